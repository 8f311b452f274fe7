/*
 * rules.c — App Services roles and rules for Device Sync (see rules.h;
 * docs/configuration.md, "Roles and rules", is the user's reference).
 *
 * rules_load compiles each role into a rules_role: its expressions become
 * filters (filter.h), and its read/write permissions become booleans,
 * because Device Sync accepts nothing else there.  Evaluation then only
 * runs the document filters, insert and delete; the field permissions are
 * a lookup in the compiled tree of "fields".
 *
 * App Services' documentation (Role-based Permissions, the role
 * configuration reference, Device Sync-Compatible Permissions) settles
 * most points; where it is silent, this module decides as follows.
 *
 * - Permissions only grant.  A document-level read or write that is true
 *   grants every field; false (or absent) grants nothing and leaves the
 *   decision to "fields" and "additional_fields".  So "write": false with
 *   "fields": {"title": {"write": true}} lets the role write title, as the
 *   App Services examples show.  Likewise a field whose own read or write
 *   is true grants everything embedded in it, whatever its nested "fields"
 *   say, and one whose own permission is false defers to them.
 * - Write implies read at every level: document, field, nested field and
 *   additional_fields.
 * - "additional_fields" covers the top-level fields that "fields" does not
 *   name.  An embedded field that a nested "fields" does not name gets no
 *   permission from it (App Services has no nested additional_fields).
 * - Nested "fields" apply to an embedded document, and to each element of
 *   an array of embedded documents.  A value they cannot apply to (a
 *   string, an array holding anything but documents) is denied whole.
 * - _id may carry no field permission (Device Sync refuses that).  It is
 *   readable whenever the document is, and writable whenever the document
 *   is: it names the object, so an insert always carries it.
 * - The document filters: the write filter gates every write permission;
 *   the read filter gates the read permissions, and so does the write
 *   filter, since what may be written may be read.  A document passing
 *   neither is invisible.
 * - insert and delete need write on every field of the document (App
 *   Services checks that first), then the "insert" or "delete"
 *   expression, evaluated against that document.
 * - A collection has roles of its own when its rules.json has a non-empty
 *   "roles"; otherwise the default roles apply, also to collections that
 *   Development Mode creates later.  An absent apply_when applies always.
 * - "search" is type-checked and ignored; sync has no search.
 * - "filters" (query filters) are checked for shape and otherwise ignored:
 *   App Services applies them to MongoDB requests, never to Device Sync.
 *
 * Device Sync compatibility.  App Services keeps an incompatible role and
 * denies all access to a user it applies to; realmfs refuses the rules at
 * load, so the mistake shows when the server starts rather than as a user
 * who silently sees nothing.  Refused: a role without both document
 * filters; read, write or a field permission that is not true or false;
 * a field permission for _id; an expression filter_parse refuses (which
 * covers %function, %%root, %%request, $regex ...); an apply_when that
 * reads a document field (Device Sync picks roles before it reads any
 * document); and a document filter, insert or delete expression that
 * reads a field that is not queryable.  That last check is skipped in
 * Development Mode, where App Services makes fields queryable as clients
 * use them; realmfs holds whole documents, so it can evaluate any field.
 * Unknown keys inside a role are refused too: a permission realmfs does
 * not know must not be mistaken for one it grants.
 */
#include "realmfs/rules.h"

#include "realmfs/value.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Long enough for any key path a message names. */
#define RULES_KEY_PATH_SIZE 512

typedef struct rules_field rules_field;

typedef struct rules_field_set {
    rules_field *items;
    size_t count;
} rules_field_set;

/* One entry of a "fields" document. */
struct rules_field {
    char *name;
    bool read;
    bool write;
    rules_field_set fields; /* its nested "fields" */
};

struct rules_role {
    char *name;
    filter *apply_when;
    filter *read_filter;  /* document_filters.read */
    filter *write_filter; /* document_filters.write */
    filter *insert;
    filter *delete;
    bool read;
    bool write;
    rules_field_set fields;
    bool additional_read;
    bool additional_write;
    /* Derived at load, so evaluation need not walk "fields": */
    bool grants_some_read;  /* some field may be read */
    bool grants_some_write; /* some field may be written */
    bool grants_all_reads;  /* every field may be read */
    bool grants_all_writes; /* every field may be written */
};

typedef struct rules_role_list {
    rules_role *items;
    size_t count;
} rules_role_list;

/* A collection with a rules.json. */
typedef struct rules_collection {
    const char *name; /* the app_config's, which outlives the rules */
    rules_role_list roles;
} rules_collection;

struct rules {
    rules_collection *collections;
    size_t collection_count;
    rules_role_list default_roles;
};

/* ------------------------------------------------------------------------ */
/* Freeing                                                                  */

static void rules_field_set_free(rules_field_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].name);
        rules_field_set_free(&set->items[i].fields);
    }
    free(set->items);
}

static void rules_role_free(rules_role *role)
{
    free(role->name);
    filter_free(role->apply_when);
    filter_free(role->read_filter);
    filter_free(role->write_filter);
    filter_free(role->insert);
    filter_free(role->delete);
    rules_field_set_free(&role->fields);
}

static void rules_role_list_free(rules_role_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        rules_role_free(&list->items[i]);
    free(list->items);
}

void rules_free(rules *rules)
{
    if (rules == NULL)
        return;
    for (size_t i = 0; i < rules->collection_count; i++)
        rules_role_list_free(&rules->collections[i].roles);
    free(rules->collections);
    rules_role_list_free(&rules->default_roles);
    free(rules);
}

/* ------------------------------------------------------------------------ */
/* Load errors                                                              */

/* Where the load is, for messages: the file, then the role (by name once
 * known, else by position) or the filter being read. */
typedef struct rules_loader {
    const app_config *app;
    const char *file;      /* relative to the app directory */
    const char *list_name; /* "roles" or "filters"; NULL outside both */
    size_t index;
    const char *role_name; /* NULL until the role's name is read */
    char *message;
    size_t message_size;
} rules_loader;

/* "<file>: role \"<name>\": <reason>", or with "roles[<i>]" before the
 * name is known; returns result. */
__attribute__((format(printf, 3, 4)))
static int rules_fail(const rules_loader *loader, int result, const char *format, ...)
{
    if (loader->message_size == 0)
        return result;
    int length;
    if (loader->role_name != NULL)
        length = snprintf(loader->message, loader->message_size, "%s: role \"%s\": ",
                          loader->file, loader->role_name);
    else if (loader->list_name != NULL)
        length = snprintf(loader->message, loader->message_size, "%s: %s[%zu]: ", loader->file,
                          loader->list_name, loader->index);
    else
        length = snprintf(loader->message, loader->message_size, "%s: ", loader->file);
    if (length < 0 || (size_t)length >= loader->message_size)
        return result;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(loader->message + length, loader->message_size - (size_t)length, format, arguments);
    va_end(arguments);
    return result;
}

static int rules_out_of_memory(const rules_loader *loader)
{
    return rules_fail(loader, -ENOMEM, "out of memory");
}

/* The JSON type of value, as messages name it. */
static const char *rules_json_type(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "an unknown JSON value";
}

/* Refuse a key of object that is not in known (NULL-terminated). */
static int rules_check_keys(const rules_loader *loader, const json_t *object,
                            const char *const *known, const char *key_path)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)object, key, value) {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], key) != 0)
            i++;
        if (known[i] == NULL)
            return rules_fail(loader, -EINVAL, "%s%sunknown key \"%s\"", key_path,
                              *key_path != '\0' ? ": " : "", key);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Loading expressions                                                      */

/* The fields an expression reads must be queryable in every collection it
 * applies to (rules_load_expression). */
typedef struct rules_scope {
    const char *const *collections;
    size_t collection_count;
    bool is_default_rule; /* then messages name the collection */
} rules_scope;

typedef struct rules_field_check {
    const rules_loader *loader;
    const rules_scope *scope;
    const char *key;
    int result;
} rules_field_check;

/* filter_visit_fields callbacks: stop at the first field not allowed. */
static int rules_check_queryable(const char *path, void *context)
{
    rules_field_check *check = context;
    const rules_scope *scope = check->scope;
    for (size_t i = 0; i < scope->collection_count; i++) {
        if (app_config_field_is_queryable(check->loader->app, scope->collections[i], path))
            continue;
        if (scope->is_default_rule)
            check->result = rules_fail(check->loader, -EINVAL,
                                       "%s reads field \"%s\", which is not queryable in "
                                       "collection \"%s\"",
                                       check->key, path, scope->collections[i]);
        else
            check->result = rules_fail(check->loader, -EINVAL,
                                       "%s reads field \"%s\", which is not queryable",
                                       check->key, path);
        return 1;
    }
    return 0;
}

static int rules_refuse_document_field(const char *path, void *context)
{
    rules_field_check *check = context;
    check->result = rules_fail(check->loader, -EINVAL,
                               "%s reads document field \"%s\"; Device Sync chooses a role "
                               "before it reads any document",
                               check->key, path);
    return 1;
}

/* How an expression may read the document. */
typedef enum rules_document_use {
    RULES_NO_DOCUMENT,      /* apply_when */
    RULES_QUERYABLE_FIELDS, /* document filters, insert, delete */
} rules_document_use;

/* Compile expression, found at key_path, into *out; scope is the
 * collections the role applies to. */
static int rules_load_expression(const rules_loader *loader, const json_t *expression,
                                 const char *key_path, rules_document_use use,
                                 const rules_scope *scope, filter **out)
{
    char parse_message[RULES_KEY_PATH_SIZE];
    *out = filter_parse(expression, key_path, parse_message, sizeof parse_message);
    /* filter_parse does not tell a bad expression from running out of
     * memory; its message does. */
    if (*out == NULL)
        return rules_fail(loader, -EINVAL, "%s", parse_message);
    rules_field_check check = {loader, scope, key_path, 0};
    if (use == RULES_NO_DOCUMENT)
        filter_visit_fields(*out, rules_refuse_document_field, &check);
    else if (!app_config_sync(loader->app)->development_mode)
        filter_visit_fields(*out, rules_check_queryable, &check);
    return check.result;
}

/* role[key], or fallback (a JSON literal) when the role has no such key. */
static const json_t *rules_member_or(const json_t *role, const char *key, const json_t *fallback)
{
    const json_t *member = json_object_get(role, key);
    return member != NULL ? member : fallback;
}

/* Both document filters, which Device Sync requires. */
static int rules_load_document_filters(const rules_loader *loader, const json_t *role,
                                       const rules_scope *scope, rules_role *out)
{
    const json_t *filters = json_object_get(role, "document_filters");
    if (filters == NULL)
        return rules_fail(loader, -EINVAL,
                          "no document_filters; Device Sync needs both document_filters.read "
                          "and document_filters.write");
    if (!json_is_object(filters))
        return rules_fail(loader, -EINVAL, "document_filters: expected an object, found %s",
                          rules_json_type(filters));
    static const char *const known[] = {"read", "write", NULL};
    int result = rules_check_keys(loader, filters, known, "document_filters");
    const json_t *read = json_object_get(filters, "read");
    const json_t *write = json_object_get(filters, "write");
    if (result == 0 && (read == NULL || write == NULL))
        result = rules_fail(loader, -EINVAL,
                            "no document_filters.%s; Device Sync needs both document filters",
                            read == NULL ? "read" : "write");
    if (result == 0)
        result = rules_load_expression(loader, read, "document_filters.read",
                                       RULES_QUERYABLE_FIELDS, scope, &out->read_filter);
    if (result == 0)
        result = rules_load_expression(loader, write, "document_filters.write",
                                       RULES_QUERYABLE_FIELDS, scope, &out->write_filter);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Loading permissions                                                      */

/* "<prefix>.<key>", or key alone when prefix is "".  Key paths only go
 * into messages, so one too long for buffer is cut and ends in "...". */
static void rules_join_key_path(char *buffer, size_t size, const char *prefix, const char *key)
{
    int length = snprintf(buffer, size, "%s%s%s", prefix, *prefix != '\0' ? "." : "", key);
    if (length >= 0 && (size_t)length >= size && size > 3)
        memcpy(buffer + size - 4, "...", 4);
}

/* holder[key], a read or write permission: Device Sync takes only true or
 * false.  Absent is false.  holder is at key_path. */
static int rules_load_permission(const rules_loader *loader, const json_t *holder,
                                 const char *key_path, const char *key, bool *out)
{
    const json_t *permission = json_object_get(holder, key);
    *out = json_is_true(permission);
    if (permission == NULL || json_is_boolean(permission))
        return 0;
    char path[RULES_KEY_PATH_SIZE];
    rules_join_key_path(path, sizeof path, key_path, key);
    return rules_fail(loader, -EINVAL,
                      "%s: expected true or false (Device Sync takes no expression here), "
                      "found %s",
                      path, rules_json_type(permission));
}

/* The "read" and "write" of holder, at key_path. */
static int rules_load_read_write(const rules_loader *loader, const json_t *holder,
                                 const char *key_path, bool *read, bool *write)
{
    int result = rules_load_permission(loader, holder, key_path, "read", read);
    if (result == 0)
        result = rules_load_permission(loader, holder, key_path, "write", write);
    return result;
}

static int rules_load_field_set(const rules_loader *loader, const json_t *fields,
                                const char *key_path, bool top_level, rules_field_set *out);

/* One entry of "fields", at key_path ("fields.address"). */
static int rules_load_field(const rules_loader *loader, const char *name, const json_t *spec,
                            const char *key_path, rules_field *out)
{
    out->name = strdup(name);
    if (out->name == NULL)
        return rules_out_of_memory(loader);
    if (!json_is_object(spec))
        return rules_fail(loader, -EINVAL, "%s: expected an object, found %s", key_path,
                          rules_json_type(spec));
    static const char *const known[] = {"read", "write", "fields", NULL};
    int result = rules_check_keys(loader, spec, known, key_path);
    if (result == 0)
        result = rules_load_read_write(loader, spec, key_path, &out->read, &out->write);
    const json_t *nested = json_object_get(spec, "fields");
    if (result == 0 && nested != NULL) {
        char nested_path[RULES_KEY_PATH_SIZE];
        rules_join_key_path(nested_path, sizeof nested_path, key_path, "fields");
        result = rules_load_field_set(loader, nested, nested_path, false, &out->fields);
    }
    return result;
}

/* A "fields" document, at key_path ("fields", "fields.address.fields"). */
static int rules_load_field_set(const rules_loader *loader, const json_t *fields,
                                const char *key_path, bool top_level, rules_field_set *out)
{
    if (!json_is_object(fields))
        return rules_fail(loader, -EINVAL, "%s: expected an object, found %s", key_path,
                          rules_json_type(fields));
    size_t count = json_object_size(fields);
    out->items = calloc(count > 0 ? count : 1, sizeof *out->items);
    if (out->items == NULL)
        return rules_out_of_memory(loader);
    const char *name;
    const json_t *spec;
    json_object_foreach((json_t *)fields, name, spec) {
        if (top_level && strcmp(name, "_id") == 0)
            return rules_fail(loader, -EINVAL,
                              "fields._id: Device Sync allows no field permissions for _id");
        char field_path[RULES_KEY_PATH_SIZE];
        rules_join_key_path(field_path, sizeof field_path, key_path, name);
        /* Counted before it loads, so a half-loaded entry is freed. */
        int result = rules_load_field(loader, name, spec, field_path, &out->items[out->count++]);
        if (result != 0)
            return result;
    }
    return 0;
}

static int rules_load_additional_fields(const rules_loader *loader, const json_t *role,
                                        rules_role *out)
{
    const json_t *additional = json_object_get(role, "additional_fields");
    if (additional == NULL)
        return 0;
    if (!json_is_object(additional))
        return rules_fail(loader, -EINVAL, "additional_fields: expected an object, found %s",
                          rules_json_type(additional));
    static const char *const known[] = {"read", "write", NULL};
    int result = rules_check_keys(loader, additional, known, "additional_fields");
    if (result == 0)
        result = rules_load_read_write(loader, additional, "additional_fields",
                                       &out->additional_read, &out->additional_write);
    return result;
}

/* "search" is not used by sync, but must still be what App Services
 * takes: a boolean or an expression. */
static int rules_check_search(const rules_loader *loader, const json_t *role)
{
    const json_t *search = json_object_get(role, "search");
    if (search == NULL || json_is_boolean(search) || json_is_object(search))
        return 0;
    return rules_fail(loader, -EINVAL, "search: expected a boolean or an expression, found %s",
                      rules_json_type(search));
}

/* ------------------------------------------------------------------------ */
/* Deriving what a role grants                                              */

typedef enum rules_permission {
    RULES_READ,
    RULES_WRITE,
} rules_permission;

/* Write implies read. */
static bool rules_grants(bool read, bool write, rules_permission permission)
{
    return write || (permission == RULES_READ && read);
}

static bool rules_field_set_grants_some(const rules_field_set *set, rules_permission permission)
{
    for (size_t i = 0; i < set->count; i++)
        if (rules_grants(set->items[i].read, set->items[i].write, permission)
            || rules_field_set_grants_some(&set->items[i].fields, permission))
            return true;
    return false;
}

/* Whether every field a document may hold is granted.  Conservative: an
 * entry that defers to nested "fields" counts as not granted, since an
 * embedded field they do not name is denied. */
static bool rules_role_grants_all(const rules_role *role, rules_permission permission)
{
    if (rules_grants(role->read, role->write, permission))
        return true;
    if (!rules_grants(role->additional_read, role->additional_write, permission))
        return false;
    for (size_t i = 0; i < role->fields.count; i++)
        if (!rules_grants(role->fields.items[i].read, role->fields.items[i].write, permission))
            return false;
    return true;
}

static bool rules_role_grants_some(const rules_role *role, rules_permission permission)
{
    return rules_grants(role->read, role->write, permission)
        || rules_grants(role->additional_read, role->additional_write, permission)
        || rules_field_set_grants_some(&role->fields, permission);
}

static void rules_role_derive(rules_role *role)
{
    role->grants_some_read = rules_role_grants_some(role, RULES_READ);
    role->grants_some_write = rules_role_grants_some(role, RULES_WRITE);
    role->grants_all_reads = rules_role_grants_all(role, RULES_READ);
    role->grants_all_writes = rules_role_grants_all(role, RULES_WRITE);
}

/* ------------------------------------------------------------------------ */
/* Loading roles and files                                                  */

/* The role's name, which none of the earlier roles of its file has. */
static int rules_load_role_name(rules_loader *loader, const json_t *role,
                                const rules_role *earlier, size_t earlier_count, rules_role *out)
{
    const json_t *name = json_object_get(role, "name");
    if (!json_is_string(name))
        return rules_fail(loader, -EINVAL, "name: expected a string, found %s",
                          name != NULL ? rules_json_type(name) : "nothing");
    for (size_t i = 0; i < earlier_count; i++)
        if (strcmp(earlier[i].name, json_string_value(name)) == 0)
            return rules_fail(loader, -EINVAL, "name: \"%s\" is also the name of roles[%zu]",
                              json_string_value(name), i);
    out->name = strdup(json_string_value(name));
    if (out->name == NULL)
        return rules_out_of_memory(loader);
    loader->role_name = out->name;
    return 0;
}

static int rules_load_role(rules_loader *loader, const json_t *role, const rules_scope *scope,
                           const rules_role *earlier, size_t earlier_count, rules_role *out)
{
    if (!json_is_object(role))
        return rules_fail(loader, -EINVAL, "expected an object, found %s", rules_json_type(role));
    int result = rules_load_role_name(loader, role, earlier, earlier_count, out);
    static const char *const known[] = {"name", "apply_when", "document_filters", "read",
                                        "write", "insert", "delete", "search", "fields",
                                        "additional_fields", NULL};
    if (result == 0)
        result = rules_check_keys(loader, role, known, "");
    if (result == 0)
        result = rules_load_expression(loader, rules_member_or(role, "apply_when", json_true()),
                                       "apply_when", RULES_NO_DOCUMENT, scope, &out->apply_when);
    if (result == 0)
        result = rules_load_document_filters(loader, role, scope, out);
    if (result == 0)
        result = rules_load_read_write(loader, role, "", &out->read, &out->write);
    if (result == 0)
        result = rules_load_expression(loader, rules_member_or(role, "insert", json_true()),
                                       "insert", RULES_QUERYABLE_FIELDS, scope, &out->insert);
    if (result == 0)
        result = rules_load_expression(loader, rules_member_or(role, "delete", json_true()),
                                       "delete", RULES_QUERYABLE_FIELDS, scope, &out->delete);
    if (result == 0)
        result = rules_check_search(loader, role);
    const json_t *fields = json_object_get(role, "fields");
    if (result == 0 && fields != NULL)
        result = rules_load_field_set(loader, fields, "fields", true, &out->fields);
    if (result == 0)
        result = rules_load_additional_fields(loader, role, out);
    if (result == 0)
        rules_role_derive(out);
    return result;
}

/* "filters": App Services applies them to MongoDB requests only, so sync
 * ignores them; they are checked so a broken export is still caught. */
static int rules_check_query_filter(const rules_loader *loader, const json_t *query_filter)
{
    if (!json_is_object(query_filter))
        return rules_fail(loader, -EINVAL, "expected an object, found %s",
                          rules_json_type(query_filter));
    static const char *const known[] = {"name", "apply_when", "query", "projection", NULL};
    int result = rules_check_keys(loader, query_filter, known, "");
    if (result != 0)
        return result;
    const json_t *name = json_object_get(query_filter, "name");
    if (!json_is_string(name))
        return rules_fail(loader, -EINVAL, "name: expected a string, found %s",
                          name != NULL ? rules_json_type(name) : "nothing");
    for (size_t i = 1; known[i] != NULL; i++) {
        const json_t *value = json_object_get(query_filter, known[i]);
        if (value != NULL && !json_is_object(value)
            && !(json_is_boolean(value) && strcmp(known[i], "apply_when") == 0))
            return rules_fail(loader, -EINVAL, "%s: expected an object, found %s", known[i],
                              rules_json_type(value));
    }
    return 0;
}

static int rules_check_query_filters(rules_loader *loader, const json_t *file)
{
    const json_t *query_filters = json_object_get(file, "filters");
    if (query_filters == NULL)
        return 0;
    if (!json_is_array(query_filters))
        return rules_fail(loader, -EINVAL, "filters: expected an array, found %s",
                          rules_json_type(query_filters));
    loader->list_name = "filters";
    size_t index;
    const json_t *query_filter;
    json_array_foreach(query_filters, index, query_filter) {
        loader->index = index;
        int result = rules_check_query_filter(loader, query_filter);
        if (result != 0)
            return result;
    }
    loader->list_name = NULL;
    return 0;
}

/* A rules.json or default_rule.json: its "roles" into *out. */
static int rules_load_file(rules_loader *loader, const json_t *file, const rules_scope *scope,
                           rules_role_list *out)
{
    if (!json_is_object(file))
        return rules_fail(loader, -EINVAL, "expected an object, found %s", rules_json_type(file));
    int result = rules_check_query_filters(loader, file);
    if (result != 0)
        return result;
    const json_t *roles = json_object_get(file, "roles");
    if (roles == NULL)
        return 0;
    if (!json_is_array(roles))
        return rules_fail(loader, -EINVAL, "roles: expected an array, found %s",
                          rules_json_type(roles));
    out->items = calloc(json_array_size(roles) > 0 ? json_array_size(roles) : 1,
                        sizeof *out->items);
    if (out->items == NULL)
        return rules_out_of_memory(loader);
    loader->list_name = "roles";
    size_t index;
    const json_t *role;
    json_array_foreach(roles, index, role) {
        loader->index = index;
        loader->role_name = NULL;
        /* Counted before it loads, so a half-loaded role is freed. */
        rules_role *loading = &out->items[out->count++];
        result = rules_load_role(loader, role, scope, out->items, out->count - 1, loading);
        if (result != 0)
            return result;
    }
    loader->list_name = NULL;
    loader->role_name = NULL;
    return 0;
}

static const rules_role_list *rules_own_roles(const rules *rules, const char *collection)
{
    for (size_t i = 0; i < rules->collection_count; i++)
        if (strcmp(rules->collections[i].name, collection) == 0)
            return rules->collections[i].roles.count > 0 ? &rules->collections[i].roles : NULL;
    return NULL;
}

static int rules_load_collections(rules_loader *loader, rules *rules)
{
    size_t count = app_config_collection_count(loader->app);
    rules->collections = calloc(count > 0 ? count : 1, sizeof *rules->collections);
    if (rules->collections == NULL)
        return rules_out_of_memory(loader);
    for (size_t i = 0; i < count; i++) {
        const app_collection *collection = app_config_collection_at(loader->app, i);
        if (collection->rules == NULL)
            continue;
        char file[RULES_KEY_PATH_SIZE];
        snprintf(file, sizeof file, "data_sources/%s/%s/%s/rules.json", collection->service,
                 collection->database, collection->name);
        loader->file = file;
        rules_collection *loaded = &rules->collections[rules->collection_count++];
        loaded->name = collection->name;
        rules_scope scope = {&collection->name, 1, false};
        int result = rules_load_file(loader, collection->rules, &scope, &loaded->roles);
        if (result != 0)
            return result;
    }
    return 0;
}

/* The default roles apply to every collection without roles of its own;
 * with none such, their fields must be queryable in every collection (""
 * names none, leaving the app-wide queryable fields). */
static int rules_load_default_roles(rules_loader *loader, rules *rules)
{
    const json_t *default_rule = app_config_default_rule(loader->app);
    if (default_rule == NULL)
        return 0;
    size_t count = app_config_collection_count(loader->app);
    const char **collections = calloc(count > 0 ? count : 1, sizeof *collections);
    if (collections == NULL)
        return rules_out_of_memory(loader);
    rules_scope scope = {collections, 0, true};
    for (size_t i = 0; i < count; i++) {
        const char *name = app_config_collection_at(loader->app, i)->name;
        if (rules_own_roles(rules, name) == NULL)
            collections[scope.collection_count++] = name;
    }
    if (scope.collection_count == 0) {
        collections[0] = "";
        scope.collection_count = 1;
        scope.is_default_rule = false;
    }
    char file[RULES_KEY_PATH_SIZE];
    snprintf(file, sizeof file, "data_sources/%s/default_rule.json",
             app_config_sync(loader->app)->service_name);
    loader->file = file;
    int result = rules_load_file(loader, default_rule, &scope, &rules->default_roles);
    free(collections);
    return result;
}

int rules_load(const app_config *app, rules **out, char *message, size_t message_size)
{
    *out = NULL;
    if (message_size > 0)
        message[0] = '\0';
    rules_loader loader = {app, "rules", NULL, 0, NULL, message, message_size};
    rules *result = calloc(1, sizeof *result);
    if (result == NULL)
        return rules_out_of_memory(&loader);
    int status = rules_load_collections(&loader, result);
    if (status == 0)
        status = rules_load_default_roles(&loader, result);
    if (status != 0) {
        rules_free(result);
        return status;
    }
    *out = result;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Choosing a role                                                          */

static const rules_role_list *rules_roles_for(const rules *rules, const char *collection)
{
    const rules_role_list *own = rules_own_roles(rules, collection);
    return own != NULL ? own : &rules->default_roles;
}

bool rules_collection_has_roles(const rules *rules, const char *collection)
{
    return rules_roles_for(rules, collection)->count > 0;
}

const rules_role *rules_select_role(const rules *rules, const char *collection,
                                    const filter_user *user)
{
    const rules_role_list *roles = rules_roles_for(rules, collection);
    for (size_t i = 0; i < roles->count; i++)
        if (filter_matches(roles->items[i].apply_when, NULL, user))
            return &roles->items[i];
    return NULL;
}

const char *rules_role_name(const rules_role *role)
{
    return role->name;
}

/* ------------------------------------------------------------------------ */
/* Evaluating                                                               */

rules_document_access rules_evaluate_document(const rules_role *role, const json_t *document,
                                              const filter_user *user)
{
    bool write_filter = filter_matches(role->write_filter, document, user);
    bool read_filter = write_filter || filter_matches(role->read_filter, document, user);
    return (rules_document_access){
        .readable = read_filter && role->grants_some_read,
        .writable = write_filter && role->grants_some_write,
        .all_fields_readable = read_filter && role->grants_all_reads,
        .all_fields_writable = write_filter && role->grants_all_writes,
    };
}

static const rules_field *rules_find_field(const rules_field_set *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->items[i].name, name) == 0)
            return &set->items[i];
    return NULL;
}

/* Whether the role's permissions grant the field at path, the document
 * filters aside. */
static bool rules_path_granted(const rules_role *role, rules_permission permission,
                               const char *const *path, size_t depth)
{
    if (rules_grants(role->read, role->write, permission))
        return true;
    const rules_field_set *level = &role->fields;
    for (size_t i = 0; i < depth; i++) {
        const rules_field *field = rules_find_field(level, path[i]);
        if (field == NULL)
            return i == 0 && rules_grants(role->additional_read, role->additional_write,
                                          permission);
        if (rules_grants(field->read, field->write, permission))
            return true;
        level = &field->fields;
    }
    return false;
}

static bool rules_is_id(const char *const *path, size_t depth)
{
    return depth == 1 && strcmp(path[0], "_id") == 0;
}

/* Whether the field at path is granted, once the document filters let
 * the role's permissions of that kind apply (gate). */
static bool rules_field_permitted(const rules_role *role, bool gate, rules_permission permission,
                                  const char *const *path, size_t depth)
{
    if (!gate || depth == 0)
        return false;
    return rules_is_id(path, depth) || rules_path_granted(role, permission, path, depth);
}

/* Device Sync field permissions are constants, so document and user are
 * not needed: the document filters' verdict is in access. */
bool rules_field_readable(const rules_role *role, const rules_document_access *access,
                          const json_t *document, const filter_user *user,
                          const char *const *path, size_t depth)
{
    (void)document;
    (void)user;
    return rules_field_permitted(role, access->readable, RULES_READ, path, depth);
}

bool rules_field_writable(const rules_role *role, const rules_document_access *access,
                          const json_t *document, const filter_user *user,
                          const char *const *path, size_t depth)
{
    (void)document;
    (void)user;
    return rules_field_permitted(role, access->writable, RULES_WRITE, path, depth);
}

/* ------------------------------------------------------------------------ */
/* Walking a document's fields                                              */

/* What the permissions allow of one value. */
typedef enum rules_verdict {
    RULES_GRANTED, /* all of it */
    RULES_PARTLY,  /* embedded fields, some of them not granted */
    RULES_DENIED,  /* none of it */
} rules_verdict;

/* A walk over a document checking one permission; in strip mode, what is
 * not granted is removed and the walk goes on, otherwise it stops at the
 * first thing not granted. */
typedef struct rules_walk {
    const rules_role *role;
    rules_permission permission;
    bool strip;
} rules_walk;

static rules_verdict rules_walk_document(const rules_walk *walk, const rules_field_set *level,
                                         bool top_level, json_t *document);

/* A value under a field whose own permission defers to nested "fields". */
static rules_verdict rules_walk_embedded(const rules_walk *walk, const rules_field_set *level,
                                         json_t *value)
{
    if (value_type_of(value) == VALUE_DOCUMENT)
        return rules_walk_document(walk, level, false, value);
    if (value_type_of(value) != VALUE_ARRAY)
        return RULES_DENIED;
    size_t index;
    json_t *element;
    json_array_foreach(value, index, element)
        if (value_type_of(element) != VALUE_DOCUMENT)
            return RULES_DENIED;
    rules_verdict verdict = RULES_GRANTED;
    json_array_foreach(value, index, element) {
        if (rules_walk_document(walk, level, false, element) == RULES_GRANTED)
            continue;
        verdict = RULES_PARTLY;
        if (!walk->strip)
            break;
    }
    return verdict;
}

static rules_verdict rules_walk_field(const rules_walk *walk, const rules_field_set *level,
                                      bool top_level, const char *name, json_t *value)
{
    if (top_level && strcmp(name, "_id") == 0)
        return RULES_GRANTED;
    const rules_field *field = rules_find_field(level, name);
    if (field == NULL)
        return top_level && rules_grants(walk->role->additional_read,
                                         walk->role->additional_write, walk->permission)
                   ? RULES_GRANTED
                   : RULES_DENIED;
    if (rules_grants(field->read, field->write, walk->permission))
        return RULES_GRANTED;
    if (field->fields.count == 0)
        return RULES_DENIED;
    return rules_walk_embedded(walk, &field->fields, value);
}

static rules_verdict rules_walk_document(const rules_walk *walk, const rules_field_set *level,
                                         bool top_level, json_t *document)
{
    rules_verdict verdict = RULES_GRANTED;
    const char *name;
    json_t *value;
    void *next;
    json_object_foreach_safe(document, next, name, value) {
        rules_verdict field_verdict = rules_walk_field(walk, level, top_level, name, value);
        if (field_verdict == RULES_GRANTED)
            continue;
        verdict = RULES_PARTLY;
        if (!walk->strip)
            break;
        if (field_verdict == RULES_DENIED)
            json_object_del(document, name);
    }
    return verdict;
}

int rules_strip_unreadable_fields(const rules_role *role, const rules_document_access *access,
                                  json_t *document, const filter_user *user)
{
    (void)user; /* Device Sync field permissions are constants */
    if (access->all_fields_readable)
        return 0;
    if (!access->readable) {
        const char *name;
        json_t *value;
        void *next;
        json_object_foreach_safe(document, next, name, value)
            if (strcmp(name, "_id") != 0)
                json_object_del(document, name);
        return 0;
    }
    rules_walk walk = {role, RULES_READ, true};
    rules_walk_document(&walk, &role->fields, true, document);
    return 0;
}

/* Insert and delete: write on the whole document, then the expression. */
static bool rules_can_change_whole(const rules_role *role, const filter *expression,
                                   const json_t *document, const filter_user *user)
{
    rules_document_access access = rules_evaluate_document(role, document, user);
    if (!access.writable)
        return false;
    rules_walk walk = {role, RULES_WRITE, false};
    /* A walk that does not strip leaves the document as it is. */
    if (!access.all_fields_writable
        && rules_walk_document(&walk, &role->fields, true, (json_t *)document) != RULES_GRANTED)
        return false;
    return filter_matches(expression, document, user);
}

bool rules_can_insert(const rules_role *role, const json_t *document, const filter_user *user)
{
    return rules_can_change_whole(role, role->insert, document, user);
}

bool rules_can_delete(const rules_role *role, const json_t *document, const filter_user *user)
{
    return rules_can_change_whole(role, role->delete, document, user);
}

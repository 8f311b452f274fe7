/*
 * sync_schema.c — the server's schemas, extended by Development Mode (see
 * sync_schema.h; docs/configuration.md, "Development Mode", is the
 * user's reference).
 *
 * What Development Mode learned is one file, <data>/schema/learned.json:
 *
 *   {"collections": {"<collection>": <its whole schema>, ...},
 *    "queryable_fields_names": ["<field>", ...]}
 *
 * with every collection whose schema it created or extended and every
 * field it made queryable.  One file rather than one per collection, so
 * that a collection may have any name and a change is one atomic rename.
 * sync_schema_open merges each learned schema into the export's: what the
 * export lacks is added, and where both define a field the export wins,
 * so an operator who edits the export keeps the edit.  Each save reads
 * the file again under an flock of the directory and merges into it, so
 * that `realmfs-server import` and a running server do not lose each
 * other's additions.
 *
 * Inference: the schema a value asks for, as Development Mode writes a
 * Realm object model into App Services' schema (docs: "Data Model
 * Mapping"): a string is "string", a boolean "bool", an integer "long"
 * (Realm's int is 64-bit), a double "double", a Decimal128 "decimal", then
 * "objectId", "date", "uuid", "binData"; an embedded document is
 * {"bsonType": "object", "properties": {...}} with no field required; an
 * array is {"bsonType": "array", "items": ...}, the items being the type
 * its non-null elements share ("double" for integers mixed with doubles,
 * "mixed" for other mixtures; with "null" added to the bsonType when some
 * elements are null, Realm's list of optional values), and absent while it
 * has none, until a later document brings elements.  null tells no type and adds nothing.  A new
 * collection gets {"title": <name>, "bsonType": "object", "properties":
 * {...}, "required": ["_id"]}.
 *
 * Extension is additive: a document is inferred, merged into (a copy of)
 * its collection's schema, and validated against the result with
 * schema_validate_document, so a value of another type than its property
 * is refused with that module's message and nothing changes.
 */
#include "sync_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_file.h"
#include "realmfs/rql.h"
#include "realmfs/schema.h"
#include "realmfs/value.h"

#define SYNC_SCHEMA_DIRECTORY "schema"
#define SYNC_SCHEMA_FILE "learned.json"
/* Sorted keys and four spaces, as the App Services CLI writes schemas. */
#define SYNC_SCHEMA_DUMP_FLAGS (JSON_INDENT(4) | JSON_SORT_KEYS)

struct sync_schema {
    app_config *app;
    char *directory; /* <data>/schema */
    char *file;      /* <data>/schema/learned.json */
};

__attribute__((format(printf, 4, 5)))
static int sync_schema_fail(char *message, size_t message_size, int error, const char *format,
                            ...)
{
    if (message_size == 0)
        return error;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, message_size, format, arguments);
    va_end(arguments);
    return error;
}

static int sync_schema_out_of_memory(char *message, size_t message_size)
{
    return sync_schema_fail(message, message_size, -ENOMEM, "out of memory");
}

/* Whether a JSON array of strings holds text. */
static bool sync_schema_list_contains(const json_t *list, const char *text)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *element = json_string_value(json_array_get(list, i));
        if (element != NULL && strcmp(element, text) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Inference and merging                                                    */

/* Whether a schema node's bsonType (or type), a name or a list of names,
 * includes type_name. */
static bool sync_schema_takes_type(const json_t *node, const char *type_name)
{
    const json_t *type = json_object_get(node, "bsonType");
    if (type == NULL)
        type = json_object_get(node, "type");
    if (json_is_string(type))
        return strcmp(json_string_value(type), type_name) == 0;
    return sync_schema_list_contains(type, type_name);
}

/*
 * Add to base what addition defines and base lacks: the properties of an
 * object node that has "properties" (a node without them takes any field,
 * and adding some would restrict it), and the items of an array node.
 * Where both define a node, base keeps its own type.  0 or -ENOMEM.
 */
static int sync_schema_merge(json_t *base, const json_t *addition)
{
    json_t *properties = json_object_get(base, "properties");
    json_t *added_properties = json_object_get(addition, "properties");
    if (json_is_object(properties) && json_is_object(added_properties)) {
        const char *name;
        json_t *added;
        json_object_foreach(added_properties, name, added) {
            json_t *existing = json_object_get(properties, name);
            int result = existing != NULL ? sync_schema_merge(existing, added)
                         : json_object_set_new(properties, name, json_deep_copy(added)) == 0
                             ? 0
                             : -ENOMEM;
            if (result != 0)
                return result;
        }
    }
    json_t *items = json_object_get(base, "items");
    json_t *added_items = json_object_get(addition, "items");
    if (added_items == NULL)
        return 0;
    if (items != NULL)
        return sync_schema_merge(items, added_items);
    if (!sync_schema_takes_type(base, "array"))
        return 0;
    return json_object_set_new(base, "items", json_deep_copy(added_items)) == 0 ? 0 : -ENOMEM;
}

static json_t *sync_schema_infer(const json_t *value);

static bool sync_schema_is_number_type(const json_t *type)
{
    return json_is_string(type)
           && (strcmp(json_string_value(type), "long") == 0
               || strcmp(json_string_value(type), "double") == 0);
}

/* Fold the node of one more array element into the items inferred so
 * far.  0 or -ENOMEM. */
static int sync_schema_unify_items(json_t *items, const json_t *element)
{
    const json_t *items_type = json_object_get(items, "bsonType");
    const json_t *element_type = json_object_get(element, "bsonType");
    if (json_equal((json_t *)items_type, (json_t *)element_type))
        return sync_schema_merge(items, element);
    bool numbers = sync_schema_is_number_type(items_type)
                   && sync_schema_is_number_type(element_type);
    json_object_clear(items);
    return json_object_set_new(items, "bsonType", json_string(numbers ? "double" : "mixed")) == 0
               ? 0
               : -ENOMEM;
}

/* Realm's list of optional values: items whose bsonType also names
 * "null" ("mixed" takes null already).  0 or -ENOMEM. */
static int sync_schema_allow_null(json_t *items)
{
    json_t *type = json_object_get(items, "bsonType");
    if (!json_is_string(type) || strcmp(json_string_value(type), "mixed") == 0)
        return 0;
    json_t *types = json_pack("[O, s]", type, "null");
    return types != NULL && json_object_set_new(items, "bsonType", types) == 0 ? 0 : -ENOMEM;
}

/* The node of an array's non-null elements in *items, taking null too
 * when some elements are null; NULL when it has no non-null element.  0
 * or -ENOMEM. */
static int sync_schema_infer_items(const json_t *array, json_t **items)
{
    *items = NULL;
    bool has_null = false;
    int result = 0;
    size_t index;
    const json_t *element;
    json_array_foreach(array, index, element) {
        has_null |= json_is_null(element);
        if (json_is_null(element))
            continue;
        json_t *node = sync_schema_infer(element);
        if (node == NULL) {
            result = -ENOMEM;
            break;
        }
        if (*items == NULL) {
            *items = node;
            continue;
        }
        result = sync_schema_unify_items(*items, node);
        json_decref(node);
        if (result != 0)
            break;
    }
    if (result == 0 && has_null && *items != NULL)
        result = sync_schema_allow_null(*items);
    if (result != 0) {
        json_decref(*items);
        *items = NULL;
    }
    return result;
}

static json_t *sync_schema_infer_document(const json_t *document)
{
    json_t *properties = json_object();
    json_t *node = json_pack("{s:s, s:o}", "bsonType", "object", "properties", properties);
    if (node == NULL)
        return NULL;
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)document, name, value) {
        if (json_is_null(value))
            continue;
        json_t *inferred = sync_schema_infer(value);
        if (inferred == NULL || json_object_set_new(properties, name, inferred) != 0) {
            json_decref(node);
            return NULL;
        }
    }
    return node;
}

/* The schema node value asks for (see the top of this file); a new
 * reference, NULL when out of memory. */
static json_t *sync_schema_infer(const json_t *value)
{
    value_type type = value_type_of(value);
    if (type == VALUE_DOCUMENT)
        return sync_schema_infer_document(value);
    json_t *node = json_pack("{s:s}", "bsonType", value_type_name(type));
    if (node == NULL || type != VALUE_ARRAY)
        return node;
    json_t *items;
    if (sync_schema_infer_items(value, &items) != 0
        || (items != NULL && json_object_set_new(node, "items", items) != 0)) {
        json_decref(node);
        return NULL;
    }
    return node;
}

static json_t *sync_schema_new_collection(const char *name)
{
    return json_pack("{s:s, s:s, s:{}, s:[s]}", "title", name, "bsonType", "object",
                     "properties", "required", "_id");
}

/*
 * Whether document fits schema, as schema_validate_document judges it,
 * without changing document.  With skip_unknown, fields the schema does
 * not name are left out first: Development Mode learns nothing from a
 * null, so those are the fields a document may hold null without the
 * schema naming them.  0, -ENOMEM, or -EINVAL with schema.h's message.
 */
static int sync_schema_check_document(const json_t *schema, const json_t *document,
                                      bool skip_unknown, char *message, size_t message_size)
{
    json_t *copy = json_deep_copy(document);
    if (copy == NULL)
        return sync_schema_out_of_memory(message, message_size);
    int result = 0;
    if (skip_unknown && json_is_object(copy))
        result = schema_strip_unknown_fields(schema, copy);
    if (result >= 0)
        result = schema_validate_document(schema, copy, message, message_size);
    json_decref(copy);
    return result;
}

/* ------------------------------------------------------------------------ */
/* The learned file                                                         */

/* Check the learned file's shape; messages name the file and the key. */
static int sync_schema_check_learned(const sync_schema *schema, const json_t *learned,
                                     char *message, size_t message_size)
{
    const json_t *collections = json_object_get(learned, "collections");
    const json_t *fields = json_object_get(learned, "queryable_fields_names");
    if (!json_is_object(learned) || !json_is_object(collections) || !json_is_array(fields))
        return sync_schema_fail(message, message_size, -EINVAL,
                                "%s: expected {\"collections\": {...}, "
                                "\"queryable_fields_names\": [...]}",
                                schema->file);
    const char *name;
    json_t *node;
    json_object_foreach((json_t *)collections, name, node) {
        char problem[512];
        if (schema_check(node, problem, sizeof problem) != 0)
            return sync_schema_fail(message, message_size, -EINVAL,
                                    "%s: \"collections\".\"%s\": %s", schema->file, name,
                                    problem);
    }
    size_t index;
    const json_t *field;
    json_array_foreach(fields, index, field) {
        if (!json_is_string(field))
            return sync_schema_fail(message, message_size, -EINVAL,
                                    "%s: \"queryable_fields_names\"[%zu]: expected a string",
                                    schema->file, index);
    }
    return 0;
}

/* The learned file's contents, checked; an empty set when there is none.
 * 0, -ENOMEM, -EINVAL or another negative errno, with a message. */
static int sync_schema_read_learned(const sync_schema *schema, json_t **learned, char *message,
                                    size_t message_size)
{
    int result = json_file_read(schema->file, learned, message, message_size);
    if (result == -ENOENT) {
        if (message_size > 0)
            message[0] = '\0';
        *learned = json_pack("{s:{}, s:[]}", "collections", "queryable_fields_names");
        return *learned != NULL ? 0 : sync_schema_out_of_memory(message, message_size);
    }
    if (result == 0)
        result = sync_schema_check_learned(schema, *learned, message, message_size);
    if (result != 0) {
        json_decref(*learned);
        *learned = NULL;
    }
    return result;
}

/* A change to the learned file's contents.  0 or -ENOMEM. */
typedef int sync_schema_change(json_t *learned, const void *context);

typedef struct sync_schema_learned_collection {
    const char *name;
    const json_t *schema;
} sync_schema_learned_collection;

/* What the file already has for the collection stays when schema lacks
 * it (another process may have learned it). */
static int sync_schema_learn_collection(json_t *learned, const void *context)
{
    const sync_schema_learned_collection *collection = context;
    json_t *collections = json_object_get(learned, "collections");
    json_t *saved = json_object_get(collections, collection->name);
    json_t *merged = json_deep_copy(collection->schema);
    int result = merged == NULL ? -ENOMEM : saved != NULL ? sync_schema_merge(merged, saved) : 0;
    if (result == 0 && json_object_set(collections, collection->name, merged) != 0)
        result = -ENOMEM;
    json_decref(merged);
    return result;
}

static int sync_schema_learn_fields(json_t *learned, const void *context)
{
    const json_t *fields = context;
    json_t *saved = json_object_get(learned, "queryable_fields_names");
    size_t index;
    const json_t *field;
    json_array_foreach(fields, index, field) {
        if (!sync_schema_list_contains(saved, json_string_value(field))
            && json_array_append(saved, (json_t *)field) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* Apply change to the learned file, under an exclusive flock of its
 * directory (made when missing).  0, -ENOMEM, or -EIO with a message. */
static int sync_schema_save_locked(sync_schema *schema, sync_schema_change *change,
                                   const void *context, char *message, size_t message_size)
{
    json_t *learned;
    int result = sync_schema_read_learned(schema, &learned, message, message_size);
    if (result == 0) {
        result = change(learned, context);
        if (result == -ENOMEM)
            sync_schema_out_of_memory(message, message_size);
    }
    if (result == 0)
        result = json_file_write(schema->file, learned, SYNC_SCHEMA_DUMP_FLAGS, message,
                                 message_size);
    json_decref(learned);
    return result;
}

static int sync_schema_save(sync_schema *schema, sync_schema_change *change,
                            const void *context, char *message, size_t message_size)
{
    int result = 0;
    if (mkdir(schema->directory, 0700) != 0 && errno != EEXIST)
        result = sync_schema_fail(message, message_size, -errno, "%s: %s", schema->directory,
                                  strerror(errno));
    int fd = result == 0 ? open(schema->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (result == 0 && (fd < 0 || flock(fd, LOCK_EX) != 0))
        result = sync_schema_fail(message, message_size, -errno, "%s: %s", schema->directory,
                                  strerror(errno));
    if (result == 0)
        result = sync_schema_save_locked(schema, change, context, message, message_size);
    if (fd >= 0)
        close(fd);
    return result == 0 || result == -ENOMEM ? result : -EIO;
}

/* Merge the learned schemas into the app's and add the learned fields. */
static int sync_schema_apply_learned(sync_schema *schema, const json_t *learned, char *message,
                                     size_t message_size)
{
    const char *name;
    json_t *node;
    json_object_foreach(json_object_get(learned, "collections"), name, node) {
        const app_collection *collection = app_config_find_collection(schema->app, name);
        bool exported = collection != NULL && collection->schema != NULL;
        json_t *merged = json_deep_copy(exported ? collection->schema : node);
        int result = merged == NULL ? -ENOMEM : exported ? sync_schema_merge(merged, node) : 0;
        char problem[512] = "out of memory";
        if (result == 0)
            result = app_config_set_collection_schema(schema->app, name, merged, problem,
                                                      sizeof problem);
        json_decref(merged);
        if (result != 0)
            return sync_schema_fail(message, message_size, result, "%s: \"collections\".\"%s\": %s",
                                    schema->file, name, problem);
    }
    size_t index;
    const json_t *field;
    json_array_foreach(json_object_get(learned, "queryable_fields_names"), index, field) {
        if (app_config_add_queryable_field(schema->app, json_string_value(field)) != 0)
            return sync_schema_out_of_memory(message, message_size);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The interface                                                            */

int sync_schema_open(app_config *app, const char *data_directory, sync_schema **out,
                     char *message, size_t message_size)
{
    *out = NULL;
    if (message_size > 0)
        message[0] = '\0';
    sync_schema *schema = calloc(1, sizeof *schema);
    if (schema == NULL)
        return sync_schema_out_of_memory(message, message_size);
    schema->app = app;
    if (asprintf(&schema->directory, "%s/" SYNC_SCHEMA_DIRECTORY, data_directory) < 0)
        schema->directory = NULL;
    if (asprintf(&schema->file, "%s/" SYNC_SCHEMA_DIRECTORY "/" SYNC_SCHEMA_FILE,
                 data_directory) < 0)
        schema->file = NULL;
    json_t *learned = NULL;
    int result = schema->directory == NULL || schema->file == NULL
                     ? sync_schema_out_of_memory(message, message_size)
                     : sync_schema_read_learned(schema, &learned, message, message_size);
    if (result == 0)
        result = sync_schema_apply_learned(schema, learned, message, message_size);
    json_decref(learned);
    if (result != 0) {
        sync_schema_close(schema);
        return result == -ENOMEM || result == -EINVAL ? result : -EIO;
    }
    *out = schema;
    return 0;
}

void sync_schema_close(sync_schema *schema)
{
    if (schema == NULL)
        return;
    free(schema->directory);
    free(schema->file);
    free(schema);
}

bool sync_schema_development_mode(const sync_schema *schema)
{
    return app_config_sync(schema->app)->development_mode;
}

/* Development Mode: extend the collection's schema so that document fits,
 * saving it first. */
static int sync_schema_extend(sync_schema *schema, const char *name, const json_t *document,
                              bool *extended, char *message, size_t message_size)
{
    const app_collection *collection = app_config_find_collection(schema->app, name);
    const json_t *current = collection != NULL ? collection->schema : NULL;
    if (collection == NULL && app_config_sync(schema->app)->database_name == NULL)
        return sync_schema_fail(message, message_size, -EINVAL,
                                "collection \"%s\" is not in the schema, and Development Mode "
                                "cannot add it: sync/config.json has no \"database_name\"",
                                name);
    json_t *candidate = current != NULL ? json_deep_copy(current)
                                        : sync_schema_new_collection(name);
    json_t *inferred = sync_schema_infer(document);
    int result = candidate != NULL && inferred != NULL ? sync_schema_merge(candidate, inferred)
                                                       : -ENOMEM;
    json_decref(inferred);
    if (result == -ENOMEM)
        sync_schema_out_of_memory(message, message_size);
    if (result == 0)
        result = sync_schema_check_document(candidate, document, true, message, message_size);
    if (result == 0 && (current == NULL || !json_equal(candidate, (json_t *)current))) {
        sync_schema_learned_collection learned = {.name = name, .schema = candidate};
        result = sync_schema_save(schema, sync_schema_learn_collection, &learned, message,
                                  message_size);
        /* Saved but not applied (out of memory) is harmless: the next
         * start applies it. */
        if (result == 0)
            result = app_config_set_collection_schema(schema->app, name, candidate, message,
                                                      message_size);
        *extended = result == 0;
    }
    json_decref(candidate);
    return result;
}

int sync_schema_admit_document(sync_schema *schema, const char *collection,
                               const json_t *document, bool *extended,
                               char *message, size_t message_size)
{
    *extended = false;
    if (message_size > 0)
        message[0] = '\0';
    if (sync_schema_development_mode(schema))
        return sync_schema_extend(schema, collection, document, extended, message,
                                  message_size);
    const app_collection *described = app_config_find_collection(schema->app, collection);
    if (described == NULL)
        return sync_schema_fail(message, message_size, -EINVAL,
                                "collection \"%s\" is not in the schema", collection);
    if (described->schema == NULL)
        return 0;
    return sync_schema_check_document(described->schema, document, false, message,
                                      message_size);
}

/* The fields of one collection's queries that are not yet queryable. */
typedef struct sync_schema_field_scan {
    const app_config *app;
    const char *collection;
    json_t *fields; /* array of strings */
} sync_schema_field_scan;

/* Queryability is decided by a path's top-level field.  0 or -ENOMEM. */
static int sync_schema_note_field(const char *path, void *context)
{
    sync_schema_field_scan *scan = context;
    char *field = strndup(path, strcspn(path, "."));
    if (field == NULL)
        return -ENOMEM;
    int result = 0;
    if (!app_config_field_is_queryable(scan->app, scan->collection, field)
        && !sync_schema_list_contains(scan->fields, field))
        result = json_array_append_new(scan->fields, json_string(field)) == 0 ? 0 : -ENOMEM;
    free(field);
    return result;
}

/* Add to scan->fields what the queries of one collection read. */
static int sync_schema_scan_queries(sync_schema_field_scan *scan, const json_t *queries)
{
    size_t index;
    const json_t *subscription;
    json_array_foreach(queries, index, subscription) {
        const char *text = json_string_value(json_object_get(subscription, "query"));
        rql_error error;
        rql_query *query = text != NULL ? rql_parse(text, NULL, NULL, &error) : NULL;
        if (query == NULL)
            continue;
        int result = rql_visit_fields(query, sync_schema_note_field, scan);
        rql_free(query);
        if (result != 0)
            return result;
    }
    return 0;
}

int sync_schema_admit_subscriptions(sync_schema *schema, const json_t *subscriptions,
                                    char *message, size_t message_size)
{
    if (message_size > 0)
        message[0] = '\0';
    if (!sync_schema_development_mode(schema))
        return 0;
    sync_schema_field_scan scan = {.app = schema->app, .fields = json_array()};
    if (scan.fields == NULL)
        return sync_schema_out_of_memory(message, message_size);
    int result = 0;
    json_t *queries;
    json_object_foreach((json_t *)subscriptions, scan.collection, queries) {
        result = sync_schema_scan_queries(&scan, queries);
        if (result != 0)
            break;
    }
    if (result == 0 && json_array_size(scan.fields) > 0)
        result = sync_schema_save(schema, sync_schema_learn_fields, scan.fields, message,
                                  message_size);
    for (size_t i = 0; result == 0 && i < json_array_size(scan.fields); i++)
        result = app_config_add_queryable_field(schema->app,
                                                json_string_value(json_array_get(scan.fields, i)));
    json_decref(scan.fields);
    if (result == -ENOMEM)
        sync_schema_out_of_memory(message, message_size);
    return result;
}

json_t *sync_schema_collections_json(const sync_schema *schema)
{
    json_t *collections = json_object();
    size_t count = app_config_collection_count(schema->app);
    for (size_t i = 0; collections != NULL && i < count; i++) {
        const app_collection *collection = app_config_collection_at(schema->app, i);
        /* Schemas are replaced, never changed in place, so sharing them
         * is safe. */
        if (collection->schema != NULL
            && json_object_set(collections, collection->name, (json_t *)collection->schema) != 0) {
            json_decref(collections);
            collections = NULL;
        }
    }
    return collections;
}

/*
 * changeset.c — changesets, their JSON form, diffs of documents and the
 * per-object merge state.  The rules are in changeset.h and, with
 * examples, in docs/protocol.md.
 */
#include "realmfs/changeset.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/value.h"

/* The store's limit on collection names. */
#define CHANGESET_COLLECTION_MAX 255

/* Room for a message that a caller then places under a location. */
#define CHANGESET_DETAIL_SIZE 256

#define CHANGESET_COUNT_OF(array) (sizeof(array) / sizeof(array)[0])

static const char *const changeset_operation_names[] = {
    [CHANGESET_CREATE] = "create",
    [CHANGESET_DELETE] = "delete",
    [CHANGESET_SET] = "set",
    [CHANGESET_UNSET] = "unset",
};
#define CHANGESET_OPERATION_COUNT CHANGESET_COUNT_OF(changeset_operation_names)

static const char *const changeset_members[] = {"origin", "client_version", "timestamp",
                                                "instructions"};
static const char *const changeset_instruction_members[] = {"op", "collection", "id", "path",
                                                            "value"};
static const char *const object_state_members[] = {"id", "deleted", "created", "fields"};
static const char *const object_state_field_members[] = {"path", "first", "last", "value",
                                                         "unset"};

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int changeset_fail(char *message, size_t message_size, int error, const char *format, ...)
{
    if (message_size > 0) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(message, message_size, format, arguments);
        va_end(arguments);
    }
    return error;
}

static void changeset_message_clear(char *message, size_t message_size)
{
    if (message_size > 0)
        message[0] = '\0';
}

static int changeset_out_of_memory(char *message, size_t message_size)
{
    return changeset_fail(message, message_size, -ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------------ */
/* Clocks and value order                                                    */

int changeset_clock_compare(const changeset_clock *a, const changeset_clock *b)
{
    if (a->timestamp != b->timestamp)
        return a->timestamp < b->timestamp ? -1 : 1;
    if (a->origin != b->origin)
        return a->origin < b->origin ? -1 : 1;
    if (a->sequence != b->sequence)
        return a->sequence < b->sequence ? -1 : 1;
    return 0;
}

/* Clocks are written as JSON integers, which are signed 64-bit. */
static bool changeset_clock_in_range(const changeset_clock *clock)
{
    return clock->timestamp >= 0 && clock->origin <= INT64_MAX;
}

static int changeset_bytes_order(const char *a, size_t a_length, const char *b, size_t b_length)
{
    size_t common = a_length < b_length ? a_length : b_length;
    int order = common > 0 ? memcmp(a, b, common) : 0;
    if (order != 0)
        return order < 0 ? -1 : 1;
    return (a_length > b_length) - (a_length < b_length);
}

static int changeset_value_order(const json_t *a, const json_t *b);

/* -0.0 sorts before 0.0: their canonical texts differ. */
static int changeset_real_order(double a, double b)
{
    if (a != b)
        return a < b ? -1 : 1;
    return (signbit(b) != 0) - (signbit(a) != 0);
}

static int changeset_array_order(const json_t *a, const json_t *b)
{
    size_t a_size = json_array_size(a);
    size_t b_size = json_array_size(b);
    for (size_t i = 0; i < a_size && i < b_size; i++) {
        int order = changeset_value_order(json_array_get(a, i), json_array_get(b, i));
        if (order != 0)
            return order;
    }
    return (a_size > b_size) - (a_size < b_size);
}

/* Members in their order, so that a document with its fields moved is
 * another document (its text changed). */
static int changeset_object_order(const json_t *a, const json_t *b)
{
    void *a_member = json_object_iter((json_t *)a);
    void *b_member = json_object_iter((json_t *)b);
    while (a_member && b_member) {
        int order = changeset_bytes_order(json_object_iter_key(a_member),
                                          json_object_iter_key_len(a_member),
                                          json_object_iter_key(b_member),
                                          json_object_iter_key_len(b_member));
        if (order == 0)
            order = changeset_value_order(json_object_iter_value(a_member),
                                          json_object_iter_value(b_member));
        if (order != 0)
            return order;
        a_member = json_object_iter_next((json_t *)a, a_member);
        b_member = json_object_iter_next((json_t *)b, b_member);
    }
    return (a_member != NULL) - (b_member != NULL);
}

/*
 * A total order on normalized values that tells apart exactly what their
 * canonical text tells apart (1 and 1.0, 0.0 and -0.0, field order).  It
 * decides whether a diff sends a field, whether the visible document
 * changed, and which of two writes with equal clocks wins.
 */
static int changeset_value_order(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return json_typeof(a) < json_typeof(b) ? -1 : 1;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        return changeset_object_order(a, b);
    case JSON_ARRAY:
        return changeset_array_order(a, b);
    case JSON_STRING:
        return changeset_bytes_order(json_string_value(a), json_string_length(a),
                                     json_string_value(b), json_string_length(b));
    case JSON_INTEGER:
        return (json_integer_value(a) > json_integer_value(b)) -
               (json_integer_value(a) < json_integer_value(b));
    case JSON_REAL:
        return changeset_real_order(json_real_value(a), json_real_value(b));
    default:
        return 0; /* true, false and null are one value each */
    }
}

/* A removed field (NULL) sorts before any value. */
static int changeset_write_order(const json_t *a, const json_t *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    return changeset_value_order(a, b);
}

/* Nesting of arrays and objects (a scalar is 0), counted no further than
 * limit + 1, so that hostile input cannot run the stack out. */
static size_t changeset_depth(const json_t *value, size_t limit)
{
    if (!json_is_object(value) && !json_is_array(value))
        return 0;
    if (limit == 0)
        return 1;
    size_t deepest = 0;
    if (json_is_array(value)) {
        for (size_t i = 0; i < json_array_size(value); i++) {
            size_t depth = changeset_depth(json_array_get(value, i), limit - 1);
            deepest = depth > deepest ? depth : deepest;
        }
    } else {
        const char *name;
        json_t *member;
        json_object_foreach((json_t *)value, name, member) {
            size_t depth = changeset_depth(member, limit - 1);
            deepest = depth > deepest ? depth : deepest;
        }
    }
    return 1 + deepest;
}

static bool changeset_is_document(const json_t *value)
{
    return value_type_of(value) == VALUE_DOCUMENT;
}

static bool changeset_is_document_with_fields(const json_t *value)
{
    return changeset_is_document(value) && json_object_size(value) > 0;
}

/* ------------------------------------------------------------------------ */
/* The rules every instruction follows                                       */

static int changeset_check_collection(const char *collection, char *message, size_t message_size)
{
    size_t length = strlen(collection);
    if (length == 0 || length > CHANGESET_COLLECTION_MAX || collection[0] == '.' ||
        strpbrk(collection, "$/"))
        return changeset_fail(message, message_size, -EINVAL,
                              "collection \"%.60s\" is not a collection name (1 to %d bytes, "
                              "no '$' or '/', not starting with '.')",
                              collection, CHANGESET_COLLECTION_MAX);
    return 0;
}

static int changeset_check_id(const json_t *id, char *message, size_t message_size)
{
    value_type type = value_type_of(id);
    if (type != VALUE_STRING && type != VALUE_INT && type != VALUE_OBJECT_ID)
        return changeset_fail(message, message_size, -EINVAL,
                              "id must be a string, int or ObjectId, not %s",
                              value_type_name(type));
    return 0;
}

static bool changeset_path_writes_id(const char *path)
{
    return strncmp(path, "_id", 3) == 0 && (path[3] == '\0' || path[3] == '.');
}

/* Checks a dotted path and counts its field names into *field_count. */
static int changeset_check_path(const char *path, size_t *field_count, char *message,
                                size_t message_size)
{
    if (path[0] == '\0')
        return changeset_fail(message, message_size, -EINVAL, "path is empty");
    size_t count = 0;
    for (const char *name = path;; name++) {
        size_t length = strcspn(name, ".");
        if (length == 0)
            return changeset_fail(message, message_size, -EINVAL,
                                  "path \"%.200s\" has an empty field name", path);
        if (name[0] == '$')
            return changeset_fail(message, message_size, -EINVAL,
                                  "path \"%.200s\" has a field name that starts with '$'", path);
        count++;
        name += length;
        if (*name == '\0')
            break;
    }
    if (count > CHANGESET_MAX_DEPTH)
        return changeset_fail(message, message_size, -EINVAL,
                              "path has more than %d field names", CHANGESET_MAX_DEPTH);
    if (changeset_path_writes_id(path))
        return changeset_fail(message, message_size, -EINVAL,
                              "path \"%.200s\" would change _id, which never changes", path);
    *field_count = count;
    return 0;
}

static int changeset_check_value(const json_t *value, size_t field_count, char *message,
                                 size_t message_size)
{
    if (changeset_is_document_with_fields(value))
        return changeset_fail(message, message_size, -EINVAL,
                              "a set's value may not be a document with fields (set each "
                              "field)");
    if (field_count + changeset_depth(value, CHANGESET_MAX_DEPTH) > CHANGESET_MAX_DEPTH)
        return changeset_fail(message, message_size, -EINVAL,
                              "the path and its value nest deeper than %d levels",
                              CHANGESET_MAX_DEPTH);
    return 0;
}

/* Which of path and value an operation takes. */
static int changeset_check_operands(changeset_operation operation, const char *path,
                                    const json_t *value, char *message, size_t message_size)
{
    const char *name = changeset_operation_names[operation];
    bool writes_field = operation == CHANGESET_SET || operation == CHANGESET_UNSET;
    if (writes_field && !path)
        return changeset_fail(message, message_size, -EINVAL, "%s needs a path", name);
    if (!writes_field && path)
        return changeset_fail(message, message_size, -EINVAL, "%s takes no path", name);
    if (operation == CHANGESET_SET && !value)
        return changeset_fail(message, message_size, -EINVAL, "set needs a value");
    if (operation != CHANGESET_SET && value)
        return changeset_fail(message, message_size, -EINVAL, "%s takes no value", name);
    return 0;
}

/* The object an instruction names: what every instruction of a diff
 * shares, so a diff checks it once. */
static int changeset_check_object(const char *collection, const json_t *id, char *message,
                                  size_t message_size)
{
    if (!collection || !id)
        return changeset_fail(message, message_size, -EINVAL,
                              "an instruction needs a collection and an id");
    int result = changeset_check_collection(collection, message, message_size);
    if (result == 0)
        result = changeset_check_id(id, message, message_size);
    return result;
}

/* What a known operation takes, and what it writes. */
static int changeset_check_field(changeset_operation operation, const char *path,
                                 const json_t *value, char *message, size_t message_size)
{
    int result = changeset_check_operands(operation, path, value, message, message_size);
    size_t field_count = 0;
    if (result == 0 && path)
        result = changeset_check_path(path, &field_count, message, message_size);
    if (result == 0 && value)
        result = changeset_check_value(value, field_count, message, message_size);
    return result;
}

static int changeset_check_instruction(changeset_operation operation, const char *collection,
                                       const json_t *id, const char *path, const json_t *value,
                                       char *message, size_t message_size)
{
    if ((size_t)operation >= CHANGESET_OPERATION_COUNT)
        return changeset_fail(message, message_size, -EINVAL, "unknown operation %d",
                              (int)operation);
    int result = changeset_check_object(collection, id, message, message_size);
    if (result == 0)
        result = changeset_check_field(operation, path, value, message, message_size);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Building changesets                                                       */

static void changeset_instruction_free(changeset_instruction *instruction)
{
    free(instruction->collection);
    json_decref(instruction->id);
    free(instruction->path);
    json_decref(instruction->value);
}

/* Frees the instructions from index count on. */
static void changeset_truncate(changeset *changeset, size_t count)
{
    for (size_t i = count; i < changeset->count; i++)
        changeset_instruction_free(&changeset->instructions[i]);
    changeset->count = count;
}

void changeset_clear(changeset *changeset)
{
    changeset_truncate(changeset, 0);
    free(changeset->instructions);
    *changeset = (struct changeset){0};
}

changeset_clock changeset_instruction_clock(const changeset *changeset, size_t index)
{
    return (changeset_clock){
        .timestamp = changeset->timestamp,
        .origin = changeset->origin,
        .sequence = (uint32_t)index,
    };
}

/* Adds an instruction whose members the changeset then owns (on success
 * only).  0, -E2BIG or -ENOMEM. */
static int changeset_push(changeset *changeset, const changeset_instruction *instruction)
{
    if (changeset->count >= CHANGESET_MAX_INSTRUCTIONS)
        return -E2BIG;
    if (changeset->count == changeset->capacity) {
        size_t capacity = changeset->capacity > 0 ? 2 * changeset->capacity : 8;
        changeset_instruction *grown =
            reallocarray(changeset->instructions, capacity, sizeof *grown);
        if (!grown)
            return -ENOMEM;
        changeset->instructions = grown;
        changeset->capacity = capacity;
    }
    changeset->instructions[changeset->count++] = *instruction;
    return 0;
}

static int changeset_push_failed(int error, char *message, size_t message_size)
{
    if (error == -E2BIG)
        return changeset_fail(message, message_size, error, "more than %u instructions",
                              (unsigned)CHANGESET_MAX_INSTRUCTIONS);
    return changeset_out_of_memory(message, message_size);
}

/* Adds an instruction that passed changeset_check_instruction, taking
 * the references to id and value (released on failure). */
static int changeset_append_owned(changeset *changeset, changeset_operation operation,
                                  const char *collection, json_t *id, const char *path,
                                  json_t *value, char *message, size_t message_size)
{
    changeset_instruction owned = {
        .operation = operation,
        .collection = strdup(collection),
        .id = id,
        .path = path ? strdup(path) : NULL,
        .value = value,
    };
    int result = 0;
    if (!owned.collection || !owned.id || (path && !owned.path))
        result = -ENOMEM;
    if (result == 0)
        result = changeset_push(changeset, &owned);
    if (result != 0) {
        changeset_instruction_free(&owned);
        return changeset_push_failed(result, message, message_size);
    }
    return 0;
}

/* As changeset_append_owned, with copies of id and value. */
static int changeset_append_checked(changeset *changeset, changeset_operation operation,
                                    const char *collection, const json_t *id, const char *path,
                                    const json_t *value, char *message, size_t message_size)
{
    json_t *value_copy = value ? json_deep_copy(value) : NULL;
    if (value && !value_copy)
        return changeset_out_of_memory(message, message_size);
    return changeset_append_owned(changeset, operation, collection, json_deep_copy(id), path,
                                  value_copy, message, message_size);
}

int changeset_append(changeset *changeset, changeset_operation operation,
                     const char *collection, const json_t *id, const char *path,
                     const json_t *value, char *message, size_t message_size)
{
    changeset_message_clear(message, message_size);
    int result = changeset_check_instruction(operation, collection, id, path, value, message,
                                             message_size);
    if (result != 0)
        return result;
    return changeset_append_checked(changeset, operation, collection, id, path, value, message,
                                    message_size);
}

int changeset_append_taking(changeset *changeset, changeset_operation operation,
                            const char *collection, json_t *id, const char *path, json_t *value,
                            char *message, size_t message_size)
{
    changeset_message_clear(message, message_size);
    int result = changeset_check_instruction(operation, collection, id, path, value, message,
                                             message_size);
    if (result != 0) {
        json_decref(id);
        json_decref(value);
        return result;
    }
    return changeset_append_owned(changeset, operation, collection, id, path, value, message,
                                  message_size);
}

/* ------------------------------------------------------------------------ */
/* Diffs                                                                     */

/* The path of the field being compared lives in one buffer that grows
 * and shrinks as the diff descends and returns, so that a document's
 * fields cost no allocation each. */
typedef struct changeset_diff_context {
    changeset_visitor visit;
    void *visit_context;
    const char *collection;
    const json_t *id;
    char *message;
    size_t message_size;
    bool object_checked; /* collection and id, at the first instruction */
    char *path; /* NUL-terminated; empty at the top level */
    size_t path_length;
    size_t path_capacity;
} changeset_diff_context;

static int changeset_diff_emit(changeset_diff_context *context, changeset_operation operation,
                               const json_t *value)
{
    const char *path = operation == CHANGESET_SET || operation == CHANGESET_UNSET ? context->path
                                                                                   : NULL;
    int result = 0;
    if (!context->object_checked)
        result = changeset_check_object(context->collection, context->id, context->message,
                                        context->message_size);
    context->object_checked = result == 0;
    if (result == 0)
        result = changeset_check_field(operation, path, value, context->message,
                                       context->message_size);
    if (result != 0)
        return result;
    return context->visit(context->visit_context, operation, context->collection, context->id,
                          path, value, context->message, context->message_size);
}

/* A field name becomes one step of the path, so it must be one a path can
 * spell.  Appends ".name" (or name at the top level); the caller takes it
 * off again by restoring path_length. */
static int changeset_diff_push_name(changeset_diff_context *context, const char *name,
                                    size_t length)
{
    if (length == 0)
        return changeset_fail(context->message, context->message_size, -EINVAL,
                              "a field name in %s%.200s%s is empty",
                              context->path_length ? "\"" : "",
                              context->path_length ? context->path : "the document",
                              context->path_length ? "\"" : "");
    if (memchr(name, '.', length) || memchr(name, '\0', length))
        return changeset_fail(context->message, context->message_size, -EINVAL,
                              "field name \"%.200s\" holds '.' or NUL, which a path cannot "
                              "spell",
                              name);
    size_t separator = context->path_length > 0;
    size_t needed = context->path_length + separator + length + 1;
    if (needed > context->path_capacity) {
        size_t capacity = context->path_capacity ? context->path_capacity : 64;
        while (capacity < needed)
            capacity *= 2;
        char *grown = realloc(context->path, capacity);
        if (!grown)
            return changeset_out_of_memory(context->message, context->message_size);
        context->path = grown;
        context->path_capacity = capacity;
    }
    if (separator)
        context->path[context->path_length++] = '.';
    memcpy(context->path + context->path_length, name, length);
    context->path_length += length;
    context->path[context->path_length] = '\0';
    return 0;
}

static void changeset_diff_pop_to(changeset_diff_context *context, size_t length)
{
    context->path_length = length;
    if (context->path)
        context->path[length] = '\0';
}

static bool changeset_diff_skips(const changeset_diff_context *context, const char *name,
                                 size_t length)
{
    return context->path_length == 0 && length == 3 && memcmp(name, "_id", 3) == 0;
}

static int changeset_diff_documents(changeset_diff_context *context,
                                    const json_t *old_document, const json_t *new_document);

/* The instructions that take the field at the context's path from
 * old_value (NULL: absent) to new_value: documents are compared field by
 * field, and a new document is sent leaf by leaf, so that embedded
 * objects merge field by field. */
static int changeset_diff_field(changeset_diff_context *context, const json_t *old_value,
                                const json_t *new_value)
{
    if (old_value && changeset_is_document(old_value) && changeset_is_document(new_value))
        return changeset_diff_documents(context, old_value, new_value);
    if (old_value && changeset_value_order(old_value, new_value) == 0)
        return 0;
    if (changeset_is_document_with_fields(new_value))
        return changeset_diff_documents(context, NULL, new_value);
    return changeset_diff_emit(context, CHANGESET_SET, new_value);
}

static int changeset_diff_new_fields(changeset_diff_context *context, const json_t *old_document,
                                     const json_t *new_document)
{
    size_t prefix_length = context->path_length;
    const char *name;
    size_t length;
    json_t *new_value;
    json_object_keylen_foreach((json_t *)new_document, name, length, new_value) {
        if (changeset_diff_skips(context, name, length))
            continue;
        int result = changeset_diff_push_name(context, name, length);
        if (result != 0)
            return result;
        const json_t *old_value = old_document ? json_object_getn(old_document, name, length)
                                               : NULL;
        result = changeset_diff_field(context, old_value, new_value);
        changeset_diff_pop_to(context, prefix_length);
        if (result != 0)
            return result;
    }
    return 0;
}

static int changeset_diff_removed_fields(changeset_diff_context *context,
                                         const json_t *old_document, const json_t *new_document)
{
    size_t prefix_length = context->path_length;
    const char *name;
    size_t length;
    json_t *old_value;
    json_object_keylen_foreach((json_t *)old_document, name, length, old_value) {
        if (changeset_diff_skips(context, name, length) ||
            json_object_getn(new_document, name, length))
            continue;
        int result = changeset_diff_push_name(context, name, length);
        if (result == 0)
            result = changeset_diff_emit(context, CHANGESET_UNSET, NULL);
        changeset_diff_pop_to(context, prefix_length);
        if (result != 0)
            return result;
    }
    return 0;
}

/* old_document NULL: everything in new_document is new. */
static int changeset_diff_documents(changeset_diff_context *context,
                                    const json_t *old_document, const json_t *new_document)
{
    int result = changeset_diff_new_fields(context, old_document, new_document);
    if (result == 0 && old_document)
        result = changeset_diff_removed_fields(context, old_document, new_document);
    return result;
}

static int changeset_diff_check_document(const changeset_diff_context *context,
                                         const json_t *document, const char *name)
{
    if (!document)
        return 0;
    if (!changeset_is_document(document))
        return changeset_fail(context->message, context->message_size, -EINVAL,
                              "the %s is not a document", name);
    if (changeset_depth(document, CHANGESET_MAX_DEPTH) > CHANGESET_MAX_DEPTH)
        return changeset_fail(context->message, context->message_size, -EINVAL,
                              "the %s nests deeper than %d levels", name, CHANGESET_MAX_DEPTH);
    const json_t *document_id = json_object_get(document, "_id");
    if (document_id && !json_equal(document_id, context->id))
        return changeset_fail(context->message, context->message_size, -EINVAL,
                              "the %s's _id is not the object's id", name);
    return 0;
}

static int changeset_diff_objects(changeset_diff_context *context, const json_t *old_document,
                                  const json_t *new_document)
{
    int result = changeset_diff_check_document(context, old_document, "old document");
    if (result == 0)
        result = changeset_diff_check_document(context, new_document, "new document");
    if (result != 0 || (!old_document && !new_document))
        return result;
    if (!new_document)
        return changeset_diff_emit(context, CHANGESET_DELETE, NULL);
    if (!old_document)
        result = changeset_diff_emit(context, CHANGESET_CREATE, NULL);
    if (result == 0)
        result = changeset_diff_documents(context, old_document, new_document);
    return result;
}

/* The diff of the two documents, after a delete when replacing. */
static int changeset_visit_objects(const char *collection, const json_t *id, bool replace,
                                   const json_t *old_document, const json_t *new_document,
                                   changeset_visitor visit, void *visit_context, char *message,
                                   size_t message_size)
{
    changeset_message_clear(message, message_size);
    changeset_diff_context context = {
        .visit = visit,
        .visit_context = visit_context,
        .collection = collection,
        .id = id,
        .message = message,
        .message_size = message_size,
    };
    int result = replace ? changeset_diff_emit(&context, CHANGESET_DELETE, NULL) : 0;
    if (result == 0)
        result = changeset_diff_objects(&context, old_document, new_document);
    free(context.path);
    return result;
}

int changeset_diff_visit(const char *collection, const json_t *id, const json_t *old_document,
                         const json_t *new_document, changeset_visitor visit, void *visit_context,
                         char *message, size_t message_size)
{
    return changeset_visit_objects(collection, id, false, old_document, new_document, visit,
                                   visit_context, message, message_size);
}

int changeset_replace_visit(const char *collection, const json_t *id, const json_t *document,
                            changeset_visitor visit, void *visit_context, char *message,
                            size_t message_size)
{
    return changeset_visit_objects(collection, id, true, NULL, document, visit, visit_context,
                                   message, message_size);
}

static int changeset_visit_append(void *context, changeset_operation operation,
                                  const char *collection, const json_t *id, const char *path,
                                  const json_t *value, char *message, size_t message_size)
{
    return changeset_append_checked(context, operation, collection, id, path, value, message,
                                    message_size);
}

int changeset_diff(const char *collection, const json_t *id, const json_t *old_document,
                   const json_t *new_document, changeset *append_to, char *message,
                   size_t message_size)
{
    size_t count = append_to->count;
    int result = changeset_diff_visit(collection, id, old_document, new_document,
                                      changeset_visit_append, append_to, message, message_size);
    if (result != 0)
        changeset_truncate(append_to, count);
    return result;
}

int changeset_replace(const char *collection, const json_t *id, const json_t *document,
                      changeset *append_to, char *message, size_t message_size)
{
    size_t count = append_to->count;
    int result = changeset_replace_visit(collection, id, document, changeset_visit_append,
                                         append_to, message, message_size);
    if (result != 0)
        changeset_truncate(append_to, count);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Replaying on plain documents                                              */

/* The embedded document at field name of parent, made {} when it is
 * missing or holds another value, so that a write under it has a place. */
static json_t *changeset_replay_step(json_t *parent, const char *name, size_t length)
{
    char field[length + 1];
    memcpy(field, name, length);
    field[length] = '\0';
    json_t *child = json_object_get(parent, field);
    if (child && changeset_is_document(child))
        return child;
    child = json_object();
    if (!child || json_object_set_new(parent, field, child) != 0)
        return NULL;
    return child;
}

static int changeset_replay_write(const changeset_instruction *instruction, json_t *document)
{
    json_t *parent = document;
    const char *name = instruction->path;
    for (const char *dot; (dot = strchr(name, '.')); name = dot + 1) {
        parent = changeset_replay_step(parent, name, (size_t)(dot - name));
        if (!parent)
            return -ENOMEM;
    }
    if (instruction->operation == CHANGESET_UNSET) {
        json_object_del(parent, name);
        return 0;
    }
    json_t *value = json_deep_copy(instruction->value);
    if (!value || json_object_set_new(parent, name, value) != 0)
        return -ENOMEM;
    return 0;
}

int changeset_replay(const changeset_instruction *instruction, json_t **document)
{
    switch (instruction->operation) {
    case CHANGESET_CREATE:
        if (*document)
            return 0;
        *document = json_object();
        if (!*document || json_object_set(*document, "_id", instruction->id) != 0) {
            json_decref(*document);
            *document = NULL;
            return -ENOMEM;
        }
        return 0;
    case CHANGESET_DELETE:
        json_decref(*document);
        *document = NULL;
        return 0;
    case CHANGESET_SET:
    case CHANGESET_UNSET:
        return *document ? changeset_replay_write(instruction, *document) : 0;
    }
    return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Reading JSON                                                              */

/* Network input: a member we do not know might carry meaning we would
 * drop, so it is refused rather than ignored. */
static int changeset_check_members(const json_t *object, const char *const *known,
                                   size_t known_count, char *message, size_t message_size)
{
    const char *name;
    size_t length;
    json_t *member;
    json_object_keylen_foreach((json_t *)object, name, length, member) {
        bool is_known = false;
        for (size_t i = 0; i < known_count && !is_known; i++)
            is_known = strlen(known[i]) == length && memcmp(known[i], name, length) == 0;
        if (!is_known)
            return changeset_fail(message, message_size, -EINVAL, "unknown member \"%.60s\"",
                                  name);
    }
    return 0;
}

static int changeset_read_integer(const json_t *object, const char *name, json_int_t *out,
                                  char *message, size_t message_size)
{
    const json_t *member = json_object_get(object, name);
    if (!member)
        return changeset_fail(message, message_size, -EINVAL, "missing \"%s\"", name);
    if (!json_is_integer(member) || json_integer_value(member) < 0)
        return changeset_fail(message, message_size, -EINVAL, "\"%s\" must be an integer >= 0",
                              name);
    *out = json_integer_value(member);
    return 0;
}

/* A string member that becomes a C string, so without NUL; *out is NULL
 * when an optional member is absent. */
static int changeset_read_string(const json_t *object, const char *name, bool required,
                                 const char **out, char *message, size_t message_size)
{
    const json_t *member = json_object_get(object, name);
    *out = NULL;
    if (!member)
        return required ? changeset_fail(message, message_size, -EINVAL, "missing \"%s\"", name)
                        : 0;
    if (!json_is_string(member))
        return changeset_fail(message, message_size, -EINVAL, "\"%s\" must be a string", name);
    if (strlen(json_string_value(member)) != json_string_length(member))
        return changeset_fail(message, message_size, -EINVAL, "\"%s\" holds a NUL", name);
    *out = json_string_value(member);
    return 0;
}

/* An Extended JSON value, normalized.  Its nesting is bounded first so that
 * normalizing hostile input cannot run the stack out; a wrapper may nest
 * one level deeper than the value it stands for ({"$date": {"$numberLong":
 * ...}}), hence the extra level allowed here. */
static int changeset_read_value(const json_t *raw, const char *name, json_t **out,
                                char *message, size_t message_size)
{
    if (changeset_depth(raw, CHANGESET_MAX_DEPTH + 1) > CHANGESET_MAX_DEPTH + 1)
        return changeset_fail(message, message_size, -EINVAL, "%s nests deeper than %d levels",
                              name, CHANGESET_MAX_DEPTH);
    ejson_error error;
    *out = ejson_normalize(raw, &error);
    if (!*out)
        return changeset_fail(message, message_size, -EINVAL, "%s: %s", name, error.message);
    return 0;
}

static int changeset_operation_named(const char *name, changeset_operation *operation)
{
    for (size_t i = 0; i < CHANGESET_OPERATION_COUNT; i++) {
        if (strcmp(name, changeset_operation_names[i]) == 0) {
            *operation = (changeset_operation)i;
            return 0;
        }
    }
    return -EINVAL;
}

typedef struct changeset_instruction_text {
    changeset_operation operation;
    const char *collection;
    const char *path;
} changeset_instruction_text;

/* The members of an instruction that are plain strings. */
static int changeset_read_instruction_text(const json_t *raw, changeset_instruction_text *text,
                                           char *message, size_t message_size)
{
    const char *operation_name;
    int result = changeset_read_string(raw, "op", true, &operation_name, message, message_size);
    if (result == 0 && changeset_operation_named(operation_name, &text->operation) != 0)
        result = changeset_fail(message, message_size, -EINVAL, "unknown op \"%.40s\"",
                                operation_name);
    if (result == 0)
        result = changeset_read_string(raw, "collection", true, &text->collection, message,
                                       message_size);
    if (result == 0)
        result = changeset_read_string(raw, "path", false, &text->path, message, message_size);
    return result;
}

/* The members of an instruction that are Extended JSON: "id", and "value"
 * when present (*value is NULL otherwise).  On failure both are NULL. */
static int changeset_read_instruction_values(const json_t *raw, json_t **id, json_t **value,
                                             char *message, size_t message_size)
{
    const json_t *raw_id = json_object_get(raw, "id");
    const json_t *raw_value = json_object_get(raw, "value");
    *id = NULL;
    *value = NULL;
    if (!raw_id)
        return changeset_fail(message, message_size, -EINVAL, "missing \"id\"");
    int result = changeset_read_value(raw_id, "id", id, message, message_size);
    if (result == 0 && raw_value)
        result = changeset_read_value(raw_value, "value", value, message, message_size);
    if (result != 0) {
        json_decref(*id);
        *id = NULL;
    }
    return result;
}

/* Copies the string members into the instruction, which owns them then. */
static int changeset_instruction_take_text(changeset_instruction *instruction,
                                           const changeset_instruction_text *text,
                                           char *message, size_t message_size)
{
    instruction->operation = text->operation;
    instruction->collection = strdup(text->collection);
    instruction->path = text->path ? strdup(text->path) : NULL;
    if (!instruction->collection || (text->path && !instruction->path))
        return changeset_out_of_memory(message, message_size);
    return 0;
}

static int changeset_parse_instruction(const json_t *raw, changeset_instruction *out,
                                       char *message, size_t message_size)
{
    if (!json_is_object(raw))
        return changeset_fail(message, message_size, -EINVAL, "not a JSON object");
    changeset_instruction_text text;
    changeset_instruction instruction = {0};
    int result = changeset_check_members(raw, changeset_instruction_members,
                                         CHANGESET_COUNT_OF(changeset_instruction_members),
                                         message, message_size);
    if (result == 0)
        result = changeset_read_instruction_text(raw, &text, message, message_size);
    if (result == 0)
        result = changeset_read_instruction_values(raw, &instruction.id, &instruction.value,
                                                   message, message_size);
    if (result == 0)
        result = changeset_check_instruction(text.operation, text.collection, instruction.id,
                                             text.path, instruction.value, message,
                                             message_size);
    if (result == 0)
        result = changeset_instruction_take_text(&instruction, &text, message, message_size);
    if (result != 0)
        changeset_instruction_free(&instruction);
    else
        *out = instruction;
    return result;
}

static int changeset_parse_header(const json_t *json, changeset *out, char *message,
                                  size_t message_size)
{
    if (!json_is_object(json))
        return changeset_fail(message, message_size, -EINVAL, "not a JSON object");
    json_int_t origin = 0, client_version = 0, timestamp = 0;
    int result = changeset_check_members(json, changeset_members,
                                         CHANGESET_COUNT_OF(changeset_members), message,
                                         message_size);
    if (result == 0)
        result = changeset_read_integer(json, "origin", &origin, message, message_size);
    if (result == 0)
        result = changeset_read_integer(json, "client_version", &client_version, message,
                                        message_size);
    if (result == 0)
        result = changeset_read_integer(json, "timestamp", &timestamp, message, message_size);
    const json_t *instructions = json_object_get(json, "instructions");
    if (result == 0 && !instructions)
        result = changeset_fail(message, message_size, -EINVAL, "missing \"instructions\"");
    if (result == 0 && !json_is_array(instructions))
        result = changeset_fail(message, message_size, -EINVAL,
                                "\"instructions\" must be an array");
    if (result == 0 && json_array_size(instructions) > CHANGESET_MAX_INSTRUCTIONS)
        result = changeset_fail(message, message_size, -E2BIG, "more than %u instructions",
                                (unsigned)CHANGESET_MAX_INSTRUCTIONS);
    if (result == 0) {
        out->origin = (uint64_t)origin;
        out->client_version = (uint64_t)client_version;
        out->timestamp = (int64_t)timestamp;
    }
    return result;
}

static int changeset_parse_instructions(const json_t *instructions, changeset *out,
                                        char *message, size_t message_size)
{
    for (size_t i = 0; i < json_array_size(instructions); i++) {
        char detail[CHANGESET_DETAIL_SIZE];
        changeset_instruction instruction = {0};
        int result = changeset_parse_instruction(json_array_get(instructions, i), &instruction,
                                                 detail, sizeof detail);
        if (result == 0) {
            result = changeset_push(out, &instruction);
            if (result != 0) {
                changeset_instruction_free(&instruction);
                changeset_push_failed(result, detail, sizeof detail);
            }
        }
        if (result != 0)
            return changeset_fail(message, message_size, result, "instructions[%zu]: %s", i,
                                  detail);
    }
    return 0;
}

int changeset_parse(const json_t *json, changeset *out, char *message, size_t message_size)
{
    changeset_message_clear(message, message_size);
    *out = (changeset){0};
    char detail[CHANGESET_DETAIL_SIZE];
    int result = changeset_parse_header(json, out, detail, sizeof detail);
    if (result != 0)
        return changeset_fail(message, message_size, result, "changeset: %s", detail);
    result = changeset_parse_instructions(json_object_get(json, "instructions"), out, message,
                                          message_size);
    if (result != 0)
        changeset_clear(out);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Writing JSON                                                              */

/* ids and values travel as Relaxed Extended JSON, the text the files show,
 * so that any MongoDB tool reads them (ints beyond 2^53 as $numberLong). */
static json_t *changeset_extended_json(const json_t *value)
{
    size_t length;
    char *text = ejson_format_line(value, &length);
    if (!text)
        return NULL;
    json_t *raw = json_loadb(text, length, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(text);
    return raw;
}

static json_t *changeset_instruction_to_json(const changeset_instruction *instruction)
{
    json_t *object = json_object();
    if (!object)
        return NULL;
    bool built =
        json_object_set_new(object, "op",
                            json_string(changeset_operation_names[instruction->operation])) == 0 &&
        json_object_set_new(object, "collection", json_string(instruction->collection)) == 0 &&
        json_object_set_new(object, "id", changeset_extended_json(instruction->id)) == 0 &&
        (!instruction->path ||
         json_object_set_new(object, "path", json_string(instruction->path)) == 0) &&
        (!instruction->value ||
         json_object_set_new(object, "value", changeset_extended_json(instruction->value)) == 0);
    if (!built) {
        json_decref(object);
        return NULL;
    }
    return object;
}

static json_t *changeset_instructions_to_json(const changeset *changeset)
{
    json_t *array = json_array();
    for (size_t i = 0; array && i < changeset->count; i++) {
        if (json_array_append_new(array, changeset_instruction_to_json(
                                             &changeset->instructions[i])) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

json_t *changeset_to_json(const changeset *changeset)
{
    if (changeset->origin > INT64_MAX || changeset->client_version > INT64_MAX ||
        changeset->timestamp < 0)
        return NULL;
    json_t *object = json_object();
    if (!object)
        return NULL;
    bool built =
        json_object_set_new(object, "origin", json_integer((json_int_t)changeset->origin)) == 0 &&
        json_object_set_new(object, "client_version",
                            json_integer((json_int_t)changeset->client_version)) == 0 &&
        json_object_set_new(object, "timestamp", json_integer(changeset->timestamp)) == 0 &&
        json_object_set_new(object, "instructions", changeset_instructions_to_json(changeset)) ==
            0;
    if (!built) {
        json_decref(object);
        return NULL;
    }
    return object;
}

/* ------------------------------------------------------------------------ */
/* Object states                                                             */

typedef struct object_state_field {
    char *path;
    /* The earliest write at or under path, ever: orders the fields. */
    changeset_clock first_write;
    /* The latest write at path, when later than the latest delete. */
    bool has_last_write;
    changeset_clock last_write;
    json_t *value; /* what that write set; NULL when it was an unset */
} object_state_field;

struct object_state {
    json_t *id;
    bool has_delete;
    changeset_clock latest_delete;
    /* The creates later than the latest delete, in clock order.  Earlier
     * ones can never start a life of the object again. */
    changeset_clock *creates;
    size_t create_count;
    /* Sorted by object_state_path_compare, so that the fields under a path
     * follow it; every prefix of a path here is here too. */
    object_state_field *fields;
    size_t field_count;
    size_t field_capacity;
};

object_state *object_state_new(const json_t *id)
{
    if (!id || changeset_check_id(id, NULL, 0) != 0)
        return NULL;
    object_state *state = calloc(1, sizeof *state);
    if (!state)
        return NULL;
    state->id = json_deep_copy(id);
    if (!state->id) {
        free(state);
        return NULL;
    }
    return state;
}

void object_state_free(object_state *state)
{
    if (!state)
        return;
    for (size_t i = 0; i < state->field_count; i++) {
        free(state->fields[i].path);
        json_decref(state->fields[i].value);
    }
    free(state->fields);
    free(state->creates);
    json_decref(state->id);
    free(state);
}

const json_t *object_state_id(const object_state *state)
{
    return state->id;
}

/* Byte order with '.' before every other byte, so that the paths under
 * "a" ("a.b") come right after "a" and before its siblings ("a-b"). */
static int object_state_path_compare(const char *a, size_t a_length, const char *b,
                                     size_t b_length)
{
    size_t common = a_length < b_length ? a_length : b_length;
    for (size_t i = 0; i < common; i++) {
        if (a[i] == b[i])
            continue;
        if (a[i] == '.' || b[i] == '.')
            return a[i] == '.' ? -1 : 1;
        return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    }
    return (a_length > b_length) - (a_length < b_length);
}

/* Binary search for the first length bytes of path.  True when found;
 * *index is where it is or would go. */
static bool object_state_find(const object_state *state, const char *path, size_t length,
                              size_t *index)
{
    size_t low = 0;
    size_t high = state->field_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        const char *other = state->fields[middle].path;
        int order = object_state_path_compare(other, strlen(other), path, length);
        if (order == 0) {
            *index = middle;
            return true;
        }
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    *index = low;
    return false;
}

/* The lengths of path's prefixes that are whole field paths, path
 * included ("a.b.c": 1, 3, 5); returns how many.  path was checked, so it
 * has at most CHANGESET_MAX_DEPTH field names. */
static size_t object_state_prefix_lengths(const char *path, size_t lengths[CHANGESET_MAX_DEPTH])
{
    size_t count = 0;
    for (size_t i = 0;; i++) {
        if (path[i] == '.' || path[i] == '\0')
            lengths[count++] = i;
        if (path[i] == '\0')
            return count;
    }
}

static int object_state_reserve_fields(object_state *state, size_t added)
{
    if (state->field_count + added <= state->field_capacity)
        return 0;
    size_t capacity = 2 * state->field_capacity + added;
    object_state_field *grown = reallocarray(state->fields, capacity, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    state->fields = grown;
    state->field_capacity = capacity;
    return 0;
}

static void object_state_insert_field(object_state *state, char *path, size_t length,
                                      const changeset_clock *first_write)
{
    size_t index;
    object_state_find(state, path, length, &index);
    memmove(&state->fields[index + 1], &state->fields[index],
            (state->field_count - index) * sizeof state->fields[0]);
    state->fields[index] = (object_state_field){.path = path, .first_write = *first_write};
    state->field_count++;
}

/* Gives path and each of its prefixes an entry, all or nothing, so that a
 * failed write leaves no trace; new entries start with first_write.
 * Returns how many it added, or -ENOMEM. */
static int object_state_add_paths(object_state *state, const char *path,
                                  const changeset_clock *first_write)
{
    size_t lengths[CHANGESET_MAX_DEPTH];
    size_t prefix_count = object_state_prefix_lengths(path, lengths);
    char *missing[CHANGESET_MAX_DEPTH];
    size_t missing_lengths[CHANGESET_MAX_DEPTH];
    size_t missing_count = 0;
    for (size_t i = 0; i < prefix_count; i++) {
        size_t index;
        if (!object_state_find(state, path, lengths[i], &index))
            missing_lengths[missing_count++] = lengths[i];
    }
    int result = object_state_reserve_fields(state, missing_count);
    for (size_t i = 0; result == 0 && i < missing_count; i++) {
        missing[i] = strndup(path, missing_lengths[i]);
        if (!missing[i]) {
            while (i > 0)
                free(missing[--i]);
            result = -ENOMEM;
        }
    }
    if (result != 0)
        return result;
    for (size_t i = 0; i < missing_count; i++)
        object_state_insert_field(state, missing[i], missing_lengths[i], first_write);
    return (int)missing_count;
}

/* Positions are the earliest write ever at or under a path, a minimum,
 * which arrival order cannot change.  Returns whether one moved. */
static bool object_state_lower_first_writes(object_state *state, const char *path,
                                            const changeset_clock *clock)
{
    size_t lengths[CHANGESET_MAX_DEPTH];
    size_t prefix_count = object_state_prefix_lengths(path, lengths);
    bool lowered = false;
    for (size_t i = 0; i < prefix_count; i++) {
        size_t index;
        object_state_find(state, path, lengths[i], &index);
        object_state_field *field = &state->fields[index];
        if (changeset_clock_compare(clock, &field->first_write) < 0) {
            field->first_write = *clock;
            lowered = true;
        }
    }
    return lowered;
}

/*
 * Whether a write at clock replaces the register of field (NULL when the
 * path has no entry yet).  It must be later than the latest delete, whose
 * earlier writes are gone with it, and later than the register's write.
 * Equal clocks only come from an origin that broke the rule of increasing
 * timestamps; they are ordered by what they write, so that the state still
 * does not depend on arrival order.
 */
static bool object_state_write_wins(const object_state *state, const object_state_field *field,
                                    const changeset_clock *clock, const json_t *value)
{
    if (state->has_delete && changeset_clock_compare(clock, &state->latest_delete) <= 0)
        return false;
    if (!field || !field->has_last_write)
        return true;
    int order = changeset_clock_compare(clock, &field->last_write);
    if (order != 0)
        return order > 0;
    return changeset_write_order(value, field->value) > 0;
}

static void object_state_set_register(object_state *state, const char *path,
                                      const changeset_clock *clock, json_t *value)
{
    size_t index;
    object_state_find(state, path, strlen(path), &index);
    object_state_field *field = &state->fields[index];
    json_decref(field->value);
    field->has_last_write = true;
    field->last_write = *clock;
    field->value = value;
}

/*
 * Joins a write at path into the state: first_write lowers the positions
 * of path and its prefixes, and last_write (NULL: none, for a state read
 * back with a position only) with value (NULL: unset) competes for the
 * register.  1 when the state changed, 0 when not, -ENOMEM (state as it
 * was).
 */
static int object_state_join_write(object_state *state, const char *path,
                                   const changeset_clock *first_write,
                                   const changeset_clock *last_write, const json_t *value)
{
    size_t index;
    bool found = object_state_find(state, path, strlen(path), &index);
    bool wins = last_write && object_state_write_wins(state, found ? &state->fields[index] : NULL,
                                                      last_write, value);
    json_t *copy = NULL;
    if (wins && value) {
        copy = json_deep_copy(value);
        if (!copy)
            return -ENOMEM;
    }
    int added = object_state_add_paths(state, path, first_write);
    if (added < 0) {
        json_decref(copy);
        return added;
    }
    bool lowered = object_state_lower_first_writes(state, path, first_write);
    if (wins)
        object_state_set_register(state, path, last_write, copy);
    return added > 0 || lowered || wins;
}

static int object_state_join_create(object_state *state, const changeset_clock *clock)
{
    if (state->has_delete && changeset_clock_compare(clock, &state->latest_delete) <= 0)
        return 0;
    size_t index = 0;
    while (index < state->create_count &&
           changeset_clock_compare(&state->creates[index], clock) < 0)
        index++;
    if (index < state->create_count &&
        changeset_clock_compare(&state->creates[index], clock) == 0)
        return 0;
    changeset_clock *grown =
        reallocarray(state->creates, state->create_count + 1, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    state->creates = grown;
    memmove(&grown[index + 1], &grown[index], (state->create_count - index) * sizeof *grown);
    grown[index] = *clock;
    state->create_count++;
    return 1;
}

/* Everything no later than a delete is gone for good: no create or write
 * from before it can count again, whatever arrives later. */
static void object_state_forget_before(object_state *state, const changeset_clock *clock)
{
    size_t dropped = 0;
    while (dropped < state->create_count &&
           changeset_clock_compare(&state->creates[dropped], clock) <= 0)
        dropped++;
    if (dropped > 0) {
        memmove(state->creates, &state->creates[dropped],
                (state->create_count - dropped) * sizeof state->creates[0]);
        state->create_count -= dropped;
    }
    for (size_t i = 0; i < state->field_count; i++) {
        object_state_field *field = &state->fields[i];
        if (field->has_last_write && changeset_clock_compare(&field->last_write, clock) <= 0) {
            json_decref(field->value);
            field->value = NULL;
            field->has_last_write = false;
        }
    }
}

static int object_state_join_delete(object_state *state, const changeset_clock *clock)
{
    if (state->has_delete && changeset_clock_compare(clock, &state->latest_delete) <= 0)
        return 0;
    state->has_delete = true;
    state->latest_delete = *clock;
    object_state_forget_before(state, clock);
    return 1;
}

static int object_state_join(object_state *state, const changeset_instruction *instruction,
                             const changeset_clock *clock)
{
    switch (instruction->operation) {
    case CHANGESET_CREATE:
        return object_state_join_create(state, clock);
    case CHANGESET_DELETE:
        return object_state_join_delete(state, clock);
    case CHANGESET_SET:
        return object_state_join_write(state, instruction->path, clock, clock,
                                       instruction->value);
    case CHANGESET_UNSET:
        return object_state_join_write(state, instruction->path, clock, clock, NULL);
    }
    return -EINVAL;
}

/* 1 when the visible document is no longer before (NULL: absent). */
static int object_state_document_changed(const object_state *state, const json_t *before)
{
    json_t *after;
    int result = object_state_document(state, &after);
    if (result != 0)
        return result;
    bool same = (!before && !after) ||
                (before && after && changeset_value_order(before, after) == 0);
    json_decref(after);
    return !same;
}

static bool object_state_accepts(const object_state *state,
                                 const changeset_instruction *instruction,
                                 const changeset_clock *clock)
{
    return changeset_clock_in_range(clock) &&
           changeset_check_instruction(instruction->operation, instruction->collection,
                                       instruction->id, instruction->path, instruction->value,
                                       NULL, 0) == 0 &&
           json_equal(instruction->id, state->id);
}

int object_state_join_instruction(object_state *state, const changeset_instruction *instruction,
                                  const changeset_clock *clock)
{
    if (!object_state_accepts(state, instruction, clock))
        return -EINVAL;
    int result = object_state_join(state, instruction, clock);
    return result < 0 ? result : result > 0;
}

int object_state_apply(object_state *state, const changeset_instruction *instruction,
                       const changeset_clock *clock)
{
    if (!object_state_accepts(state, instruction, clock))
        return -EINVAL;
    json_t *before;
    int result = object_state_document(state, &before);
    if (result != 0)
        return result;
    result = object_state_join(state, instruction, clock);
    if (result > 0)
        result = object_state_document_changed(state, before);
    json_decref(before);
    return result;
}

/* ------------------------------------------------------------------------ */
/* The visible document                                                      */

/* A field of a document being built, waiting to be put in field order. */
typedef struct object_state_member {
    const char *name;
    size_t name_length;
    changeset_clock first_write;
    json_t *value;
} object_state_member;

static int object_state_member_order(const void *a, const void *b)
{
    const object_state_member *left = a;
    const object_state_member *right = b;
    int order = changeset_clock_compare(&left->first_write, &right->first_write);
    if (order != 0)
        return order;
    return changeset_bytes_order(left->name, left->name_length, right->name, right->name_length);
}

/* The write of field that counts: its register, when later than the
 * start of the object's current life (its earliest create). */
static const changeset_clock *object_state_counting_write(const object_state *state,
                                                          const object_state_field *field)
{
    if (!field->has_last_write ||
        changeset_clock_compare(&field->last_write, &state->creates[0]) <= 0)
        return NULL;
    return &field->last_write;
}

/* The later of two clocks, either of which may be NULL; a wins ties. */
static const changeset_clock *object_state_later(const changeset_clock *a,
                                                 const changeset_clock *b)
{
    if (!a || !b)
        return a ? a : b;
    return changeset_clock_compare(b, a) > 0 ? b : a;
}

static const changeset_clock *object_state_latest_write(const object_state *state, size_t begin,
                                                        size_t end)
{
    const changeset_clock *latest = NULL;
    for (size_t i = begin; i < end; i++)
        latest = object_state_later(latest, object_state_counting_write(state, &state->fields[i]));
    return latest;
}

/* The index after the entries under fields[index], which follow it. */
static size_t object_state_subtree_end(const object_state *state, size_t index)
{
    const char *path = state->fields[index].path;
    size_t length = strlen(path);
    size_t end = index + 1;
    while (end < state->field_count && strncmp(state->fields[end].path, path, length) == 0 &&
           state->fields[end].path[length] == '.')
        end++;
    return end;
}

static int object_state_fill_document(const object_state *state, size_t begin, size_t end,
                                      size_t prefix_length, const changeset_clock *ancestor_write,
                                      json_t *document);

/*
 * What the path of fields[index] shows (*value NULL: nothing), given the
 * latest counting write at its prefixes (ancestor_write, NULL: none):
 * the latest counting write at, above or under the path decides, as
 * changeset.h says.
 */
static int object_state_build_value(const object_state *state, size_t index, size_t end,
                                    const changeset_clock *ancestor_write, json_t **value)
{
    const object_state_field *field = &state->fields[index];
    const changeset_clock *own = object_state_counting_write(state, field);
    const changeset_clock *below = object_state_latest_write(state, index + 1, end);
    const changeset_clock *latest = object_state_later(own, below);
    *value = NULL;
    if (!latest || (ancestor_write && changeset_clock_compare(latest, ancestor_write) <= 0))
        return 0;
    if (latest == own) {
        if (!field->value)
            return 0;
        *value = json_deep_copy(field->value);
        return *value ? 0 : -ENOMEM;
    }
    *value = json_object();
    if (!*value)
        return -ENOMEM;
    int result = object_state_fill_document(state, index + 1, end, strlen(field->path) + 1,
                                            object_state_later(ancestor_write, own), *value);
    if (result != 0) {
        json_decref(*value);
        *value = NULL;
    }
    return result;
}

/* Puts members into document in field order; each value's reference goes
 * to the document, or is dropped on failure. */
static int object_state_add_members(json_t *document, object_state_member *members,
                                    size_t count)
{
    qsort(members, count, sizeof *members, object_state_member_order);
    int result = 0;
    for (size_t i = 0; i < count; i++) {
        if (result != 0)
            json_decref(members[i].value);
        else if (json_object_setn_new(document, members[i].name, members[i].name_length,
                                      members[i].value) != 0)
            result = -ENOMEM;
    }
    return result;
}

/* Adds to document the fields that the entries in [begin, end) show; their
 * paths all share the first prefix_length bytes (0 at the top level). */
static int object_state_fill_document(const object_state *state, size_t begin, size_t end,
                                      size_t prefix_length, const changeset_clock *ancestor_write,
                                      json_t *document)
{
    object_state_member *members = calloc(end - begin + 1, sizeof *members);
    if (!members)
        return -ENOMEM;
    size_t count = 0;
    int result = 0;
    for (size_t index = begin; result == 0 && index < end;) {
        size_t subtree_end = object_state_subtree_end(state, index);
        json_t *value;
        result = object_state_build_value(state, index, subtree_end, ancestor_write, &value);
        if (result == 0 && value) {
            const object_state_field *field = &state->fields[index];
            members[count++] = (object_state_member){
                .name = field->path + prefix_length,
                .name_length = strlen(field->path) - prefix_length,
                .first_write = field->first_write,
                .value = value,
            };
        }
        index = subtree_end;
    }
    if (result == 0)
        result = object_state_add_members(document, members, count);
    else
        for (size_t i = 0; i < count; i++)
            json_decref(members[i].value);
    free(members);
    return result;
}

int object_state_document(const object_state *state, json_t **document)
{
    *document = NULL;
    if (state->create_count == 0)
        return 0;
    json_t *built = json_object();
    if (!built || json_object_set_new(built, "_id", json_deep_copy(state->id)) != 0) {
        json_decref(built);
        return -ENOMEM;
    }
    int result = object_state_fill_document(state, 0, state->field_count, 0, NULL, built);
    if (result != 0) {
        json_decref(built);
        return result;
    }
    *document = built;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Object states as JSON                                                     */

static json_t *object_state_clock_to_json(const changeset_clock *clock)
{
    return json_pack("[III]", (json_int_t)clock->timestamp, (json_int_t)clock->origin,
                     (json_int_t)clock->sequence);
}

/* "last" with "value", or with "unset": true. */
static bool object_state_last_write_to_json(json_t *object, const object_state_field *field)
{
    if (json_object_set_new(object, "last", object_state_clock_to_json(&field->last_write)) != 0)
        return false;
    if (!field->value)
        return json_object_set_new(object, "unset", json_true()) == 0;
    return json_object_set_new(object, "value", changeset_extended_json(field->value)) == 0;
}

static json_t *object_state_field_to_json(const object_state_field *field)
{
    json_t *object = json_object();
    if (!object)
        return NULL;
    bool built =
        json_object_set_new(object, "path", json_string(field->path)) == 0 &&
        json_object_set_new(object, "first", object_state_clock_to_json(&field->first_write)) ==
            0 &&
        (!field->has_last_write || object_state_last_write_to_json(object, field));
    if (!built) {
        json_decref(object);
        return NULL;
    }
    return object;
}

static json_t *object_state_creates_to_json(const object_state *state)
{
    json_t *array = json_array();
    for (size_t i = 0; array && i < state->create_count; i++) {
        if (json_array_append_new(array, object_state_clock_to_json(&state->creates[i])) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

static json_t *object_state_fields_to_json(const object_state *state)
{
    json_t *array = json_array();
    for (size_t i = 0; array && i < state->field_count; i++) {
        if (json_array_append_new(array, object_state_field_to_json(&state->fields[i])) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

json_t *object_state_to_json(const object_state *state)
{
    json_t *object = json_object();
    if (!object)
        return NULL;
    bool built =
        json_object_set_new(object, "id", changeset_extended_json(state->id)) == 0 &&
        (!state->has_delete ||
         json_object_set_new(object, "deleted",
                             object_state_clock_to_json(&state->latest_delete)) == 0) &&
        json_object_set_new(object, "created", object_state_creates_to_json(state)) == 0 &&
        json_object_set_new(object, "fields", object_state_fields_to_json(state)) == 0;
    if (!built) {
        json_decref(object);
        return NULL;
    }
    return object;
}

static bool object_state_read_clock_part(const json_t *array, size_t index, json_int_t maximum,
                                         json_int_t *part)
{
    const json_t *member = json_array_get(array, index);
    if (!json_is_integer(member) || json_integer_value(member) < 0 ||
        json_integer_value(member) > maximum)
        return false;
    *part = json_integer_value(member);
    return true;
}

static int object_state_read_clock(const json_t *json, const char *name, changeset_clock *clock,
                                   char *message, size_t message_size)
{
    json_int_t timestamp, origin, sequence;
    if (!json_is_array(json) || json_array_size(json) != 3 ||
        !object_state_read_clock_part(json, 0, INT64_MAX, &timestamp) ||
        !object_state_read_clock_part(json, 1, INT64_MAX, &origin) ||
        !object_state_read_clock_part(json, 2, UINT32_MAX, &sequence))
        return changeset_fail(message, message_size, -EINVAL,
                              "%s is not a clock [timestamp, origin, sequence] (integers >= 0, "
                              "sequence < 2^32)",
                              name);
    *clock = (changeset_clock){
        .timestamp = (int64_t)timestamp,
        .origin = (uint64_t)origin,
        .sequence = (uint32_t)sequence,
    };
    return 0;
}

/* A field entry's write: absent (*has_last_write false), or "last" with
 * exactly one of "value" and "unset": true (*value NULL). */
static int object_state_read_last_write(const json_t *entry, size_t field_count,
                                        bool *has_last_write, changeset_clock *last_write,
                                        json_t **value, char *message, size_t message_size)
{
    const json_t *last = json_object_get(entry, "last");
    const json_t *raw_value = json_object_get(entry, "value");
    const json_t *unset = json_object_get(entry, "unset");
    *has_last_write = last != NULL;
    *value = NULL;
    if (!last && !raw_value && !unset)
        return 0;
    if (!last || (raw_value != NULL) == (unset != NULL) || (unset && !json_is_true(unset)))
        return changeset_fail(message, message_size, -EINVAL,
                              "a write is \"last\" with either \"value\" or \"unset\": true");
    int result = object_state_read_clock(last, "\"last\"", last_write, message, message_size);
    if (result == 0 && raw_value)
        result = changeset_read_value(raw_value, "value", value, message, message_size);
    if (result == 0 && *value)
        result = changeset_check_value(*value, field_count, message, message_size);
    return result;
}

static int object_state_read_field(object_state *state, const json_t *entry, char *message,
                                   size_t message_size)
{
    if (!json_is_object(entry))
        return changeset_fail(message, message_size, -EINVAL, "not a JSON object");
    const char *path;
    size_t field_count;
    changeset_clock first_write, last_write;
    bool has_last_write = false;
    json_t *value = NULL;
    int result = changeset_check_members(entry, object_state_field_members,
                                         CHANGESET_COUNT_OF(object_state_field_members), message,
                                         message_size);
    if (result == 0)
        result = changeset_read_string(entry, "path", true, &path, message, message_size);
    if (result == 0)
        result = changeset_check_path(path, &field_count, message, message_size);
    if (result == 0)
        result = object_state_read_clock(json_object_get(entry, "first"), "\"first\"",
                                         &first_write, message, message_size);
    if (result == 0)
        result = object_state_read_last_write(entry, field_count, &has_last_write, &last_write,
                                              &value, message, message_size);
    if (result == 0) {
        result = object_state_join_write(state, path, &first_write,
                                         has_last_write ? &last_write : NULL, value);
        if (result < 0)
            changeset_out_of_memory(message, message_size);
    }
    json_decref(value);
    return result < 0 ? result : 0;
}

/* Reads one element of an array member of a state with read, which writes
 * its message without the location; the location goes in front. */
typedef int (*object_state_element_reader)(object_state *state, const json_t *element,
                                           char *message, size_t message_size);

static int object_state_read_array(object_state *state, const json_t *json, const char *name,
                                   object_state_element_reader read, char *message,
                                   size_t message_size)
{
    const json_t *array = json_object_get(json, name);
    if (!json_is_array(array))
        return changeset_fail(message, message_size, -EINVAL, "state: \"%s\" must be an array",
                              name);
    for (size_t i = 0; i < json_array_size(array); i++) {
        char detail[CHANGESET_DETAIL_SIZE];
        int result = read(state, json_array_get(array, i), detail, sizeof detail);
        if (result != 0)
            return changeset_fail(message, message_size, result, "state: %s[%zu]: %s", name, i,
                                  detail);
    }
    return 0;
}

static int object_state_read_create(object_state *state, const json_t *element, char *message,
                                    size_t message_size)
{
    changeset_clock clock;
    int result = object_state_read_clock(element, "a create", &clock, message, message_size);
    if (result == 0 && object_state_join_create(state, &clock) < 0)
        result = changeset_out_of_memory(message, message_size);
    return result;
}

static int object_state_read_delete(object_state *state, const json_t *json, char *message,
                                    size_t message_size)
{
    const json_t *deleted = json_object_get(json, "deleted");
    if (!deleted)
        return 0;
    changeset_clock clock;
    char detail[CHANGESET_DETAIL_SIZE];
    int result = object_state_read_clock(deleted, "\"deleted\"", &clock, detail, sizeof detail);
    if (result != 0)
        return changeset_fail(message, message_size, result, "state: %s", detail);
    object_state_join_delete(state, &clock);
    return 0;
}

static int object_state_read_id(const json_t *json, object_state **state, char *message,
                                size_t message_size)
{
    const json_t *raw_id = json_object_get(json, "id");
    char detail[CHANGESET_DETAIL_SIZE];
    json_t *id = NULL;
    int result = raw_id ? changeset_read_value(raw_id, "id", &id, detail, sizeof detail)
                        : changeset_fail(detail, sizeof detail, -EINVAL, "missing \"id\"");
    if (result == 0)
        result = changeset_check_id(id, detail, sizeof detail);
    if (result == 0) {
        *state = object_state_new(id);
        if (!*state)
            result = changeset_out_of_memory(detail, sizeof detail);
    }
    json_decref(id);
    if (result != 0)
        return changeset_fail(message, message_size, result, "state: %s", detail);
    return 0;
}

int object_state_from_json(const json_t *json, object_state **state, char *message,
                           size_t message_size)
{
    changeset_message_clear(message, message_size);
    *state = NULL;
    char detail[CHANGESET_DETAIL_SIZE];
    int result = json_is_object(json)
                     ? changeset_check_members(json, object_state_members,
                                               CHANGESET_COUNT_OF(object_state_members), detail,
                                               sizeof detail)
                     : changeset_fail(detail, sizeof detail, -EINVAL, "not a JSON object");
    if (result != 0)
        return changeset_fail(message, message_size, result, "state: %s", detail);
    object_state *read = NULL;
    result = object_state_read_id(json, &read, message, message_size);
    if (result == 0)
        result = object_state_read_delete(read, json, message, message_size);
    if (result == 0)
        result = object_state_read_array(read, json, "created", object_state_read_create,
                                         message, message_size);
    if (result == 0)
        result = object_state_read_array(read, json, "fields", object_state_read_field, message,
                                         message_size);
    if (result != 0) {
        object_state_free(read);
        return result;
    }
    *state = read;
    return 0;
}

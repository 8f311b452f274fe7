/*
 * schema.c — checking App Services document schemas and validating
 * normalized documents against them.  See schema.h for the dialect.
 */
#include "realmfs/schema.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/value.h"

/* What a schema accepts, as a set of flags: one per bsonType that a value
 * can match.  "number" and the JSON Schema aliases are unions of these. */
enum {
    SCHEMA_ACCEPTS_OBJECT_ID = 1u << 0,
    SCHEMA_ACCEPTS_STRING = 1u << 1,
    SCHEMA_ACCEPTS_INT = 1u << 2, /* 32-bit integers only */
    SCHEMA_ACCEPTS_LONG = 1u << 3,
    SCHEMA_ACCEPTS_DOUBLE = 1u << 4,
    SCHEMA_ACCEPTS_DECIMAL = 1u << 5,
    SCHEMA_ACCEPTS_BOOL = 1u << 6,
    SCHEMA_ACCEPTS_DATE = 1u << 7,
    SCHEMA_ACCEPTS_UUID = 1u << 8,
    SCHEMA_ACCEPTS_BINARY = 1u << 9,
    SCHEMA_ACCEPTS_OBJECT = 1u << 10,
    SCHEMA_ACCEPTS_ARRAY = 1u << 11,
    SCHEMA_ACCEPTS_NULL = 1u << 12,
    SCHEMA_ACCEPTS_ANYTHING = 1u << 13,
};

/* "number" keeps any number as it is: long takes every integer. */
#define SCHEMA_ACCEPTS_NUMBER \
    (SCHEMA_ACCEPTS_LONG | SCHEMA_ACCEPTS_DOUBLE | SCHEMA_ACCEPTS_DECIMAL)

typedef struct schema_type_name {
    const char *name;
    unsigned accepts;
} schema_type_name;

static const schema_type_name schema_bson_type_names[] = {
    {"objectId", SCHEMA_ACCEPTS_OBJECT_ID},
    {"string", SCHEMA_ACCEPTS_STRING},
    {"int", SCHEMA_ACCEPTS_INT},
    {"long", SCHEMA_ACCEPTS_LONG},
    {"double", SCHEMA_ACCEPTS_DOUBLE},
    {"decimal", SCHEMA_ACCEPTS_DECIMAL},
    {"number", SCHEMA_ACCEPTS_NUMBER},
    {"bool", SCHEMA_ACCEPTS_BOOL},
    {"date", SCHEMA_ACCEPTS_DATE},
    {"uuid", SCHEMA_ACCEPTS_UUID},
    {"binData", SCHEMA_ACCEPTS_BINARY},
    {"object", SCHEMA_ACCEPTS_OBJECT},
    {"array", SCHEMA_ACCEPTS_ARRAY},
    {"null", SCHEMA_ACCEPTS_NULL},
    {"mixed", SCHEMA_ACCEPTS_ANYTHING},
};

static const schema_type_name schema_json_type_names[] = {
    {"object", SCHEMA_ACCEPTS_OBJECT},
    {"array", SCHEMA_ACCEPTS_ARRAY},
    {"string", SCHEMA_ACCEPTS_STRING},
    {"number", SCHEMA_ACCEPTS_NUMBER},
    {"boolean", SCHEMA_ACCEPTS_BOOL},
    {"null", SCHEMA_ACCEPTS_NULL},
    {"integer", SCHEMA_ACCEPTS_LONG},
};

/* A keyword naming types ("bsonType" or its alias "type") and its names. */
typedef struct schema_type_keyword {
    const char *keyword;
    const schema_type_name *names;
    size_t name_count;
} schema_type_keyword;

static const schema_type_keyword schema_bson_type_keyword = {
    "bsonType", schema_bson_type_names,
    sizeof schema_bson_type_names / sizeof schema_bson_type_names[0]};

static const schema_type_keyword schema_json_type_keyword = {
    "type", schema_json_type_names,
    sizeof schema_json_type_names / sizeof schema_json_type_names[0]};

/* How an accepted value is stored: as it is, or converted to the number
 * type the schema asks for. */
typedef enum schema_conversion {
    SCHEMA_KEEP,
    SCHEMA_TO_DOUBLE,
    SCHEMA_TO_DECIMAL,
} schema_conversion;

/* Long enough for any realistic path; a longer one is cut short, which only
 * shortens the message. */
#define SCHEMA_PATH_MAX 512

/* Shown instead of an empty path, for a problem with the whole schema or
 * document. */
#define SCHEMA_ROOT_NAME "(root)"

/* The state of one walk over a schema, or over a document and its schema:
 * the path reached, for messages, and where the message goes. */
typedef struct schema_walk {
    char path[SCHEMA_PATH_MAX];
    size_t path_length;
    bool convert; /* store converted numbers back into the document */
    bool conversion_found; /* a value must be stored as another number type */
    char *message;
    size_t message_size;
} schema_walk;

static void schema_walk_start(schema_walk *walk, bool convert, char *message,
                              size_t message_size)
{
    walk->path[0] = '\0';
    walk->path_length = 0;
    walk->convert = convert;
    walk->conversion_found = false;
    walk->message = message;
    walk->message_size = message_size;
    if (message_size > 0)
        message[0] = '\0';
}

/* Writes "<path>: <problem>" as the walk's message and returns error. */
__attribute__((format(printf, 3, 4)))
static int schema_report(const schema_walk *walk, int error, const char *format, ...)
{
    if (walk->message_size == 0)
        return error;
    const char *path = walk->path_length > 0 ? walk->path : SCHEMA_ROOT_NAME;
    int prefix_length = snprintf(walk->message, walk->message_size, "%s: ", path);
    if (prefix_length < 0 || (size_t)prefix_length >= walk->message_size)
        return error;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(walk->message + prefix_length, walk->message_size - (size_t)prefix_length,
              format, arguments);
    va_end(arguments);
    return error;
}

/* Appends to the path and returns its previous length, which
 * schema_path_restore takes to undo the append. */
__attribute__((format(printf, 2, 3)))
static size_t schema_path_append(schema_walk *walk, const char *format, ...)
{
    size_t previous_length = walk->path_length;
    size_t room = sizeof walk->path - previous_length;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(walk->path + previous_length, room, format, arguments);
    va_end(arguments);
    if (written > 0)
        walk->path_length += (size_t)written < room ? (size_t)written : room - 1;
    return previous_length;
}

/* Cut short where the path is full, as schema_path_append is. */
static void schema_path_add_bytes(schema_walk *walk, const char *bytes, size_t count)
{
    size_t room = sizeof walk->path - 1 - walk->path_length;
    if (count > room)
        count = room;
    memcpy(walk->path + walk->path_length, bytes, count);
    walk->path_length += count;
    walk->path[walk->path_length] = '\0';
}

/* A field name joins the path with a dot, except at the top level.  Every
 * field of every document validated passes here, so no printf. */
static size_t schema_path_push_name(schema_walk *walk, const char *name)
{
    size_t previous_length = walk->path_length;
    if (previous_length > 0)
        schema_path_add_bytes(walk, ".", 1);
    schema_path_add_bytes(walk, name, strlen(name));
    return previous_length;
}

static size_t schema_path_push_index(schema_walk *walk, size_t index)
{
    return schema_path_append(walk, "[%zu]", index);
}

static void schema_path_restore(schema_walk *walk, size_t previous_length)
{
    walk->path_length = previous_length;
    walk->path[previous_length] = '\0';
}

static int schema_lookup_type_name(const schema_walk *walk, const schema_type_keyword *keyword,
                                   const json_t *name, unsigned *accepts)
{
    const char *text = json_string_value(name);
    for (size_t i = 0; i < keyword->name_count; i++) {
        if (strcmp(keyword->names[i].name, text) == 0) {
            *accepts |= keyword->names[i].accepts;
            return 0;
        }
    }
    return schema_report(walk, -EINVAL, "unknown %s \"%s\"", keyword->keyword, text);
}

/* The union of what the names in a bsonType (or type) value accept; the
 * value is one name or a non-empty array of names. */
static int schema_parse_type_names(const schema_walk *walk, const schema_type_keyword *keyword,
                                   const json_t *names, unsigned *accepts)
{
    *accepts = 0;
    if (json_is_string(names))
        return schema_lookup_type_name(walk, keyword, names, accepts);
    if (!json_is_array(names) || json_array_size(names) == 0)
        return schema_report(walk, -EINVAL, "%s must be a name or a non-empty array of names",
                             keyword->keyword);
    size_t index;
    const json_t *name;
    json_array_foreach(names, index, name) {
        if (!json_is_string(name))
            return schema_report(walk, -EINVAL, "%s must be a name or a non-empty array of names",
                                 keyword->keyword);
        int result = schema_lookup_type_name(walk, keyword, name, accepts);
        if (result != 0)
            return result;
    }
    return 0;
}

/* What a schema node accepts: its bsonType, else its type, else anything. */
static int schema_accepted_types(const schema_walk *walk, const json_t *schema, unsigned *accepts)
{
    const json_t *names = json_object_get(schema, schema_bson_type_keyword.keyword);
    if (names != NULL)
        return schema_parse_type_names(walk, &schema_bson_type_keyword, names, accepts);
    names = json_object_get(schema, schema_json_type_keyword.keyword);
    if (names != NULL)
        return schema_parse_type_names(walk, &schema_json_type_keyword, names, accepts);
    *accepts = SCHEMA_ACCEPTS_ANYTHING;
    return 0;
}

/* ---- schema_check ---- */

static int schema_check_node(schema_walk *walk, const json_t *schema);

static int schema_check_bson_type(schema_walk *walk, const json_t *schema, const json_t *value)
{
    unsigned accepts;
    if (json_object_get(schema, schema_json_type_keyword.keyword) != NULL)
        return schema_report(walk, -EINVAL, "bsonType and type cannot both be given");
    return schema_parse_type_names(walk, &schema_bson_type_keyword, value, &accepts);
}

static int schema_check_json_type(schema_walk *walk, const json_t *schema, const json_t *value)
{
    unsigned accepts;
    (void)schema;
    return schema_parse_type_names(walk, &schema_json_type_keyword, value, &accepts);
}

static int schema_check_properties(schema_walk *walk, const json_t *schema, const json_t *value)
{
    (void)schema;
    if (!json_is_object(value))
        return schema_report(walk, -EINVAL, "properties must be an object");
    size_t keyword_path = schema_path_push_name(walk, "properties");
    const char *name;
    const json_t *property;
    int result = 0;
    json_object_foreach((json_t *)value, name, property) {
        size_t property_path = schema_path_push_name(walk, name);
        result = schema_check_node(walk, property);
        schema_path_restore(walk, property_path);
        if (result != 0)
            break;
    }
    schema_path_restore(walk, keyword_path);
    return result;
}

/* A required field must be one the schema names, when it names any: an
 * object schema with properties rejects every other field, so such a
 * required field could never be present. */
static int schema_check_required(schema_walk *walk, const json_t *schema, const json_t *value)
{
    if (!json_is_array(value))
        return schema_report(walk, -EINVAL, "required must be an array of field names");
    const json_t *properties = json_object_get(schema, "properties");
    size_t index;
    const json_t *name;
    json_array_foreach(value, index, name) {
        if (!json_is_string(name))
            return schema_report(walk, -EINVAL, "required must be an array of field names");
        if (json_is_object(properties) && json_object_get(properties, json_string_value(name)) == NULL)
            return schema_report(walk, -EINVAL, "required field \"%s\" is not in properties",
                                 json_string_value(name));
    }
    return 0;
}

static int schema_check_items(schema_walk *walk, const json_t *schema, const json_t *value)
{
    (void)schema;
    size_t previous_path = schema_path_push_name(walk, "items");
    int result = schema_check_node(walk, value);
    schema_path_restore(walk, previous_path);
    return result;
}

static int schema_check_title(schema_walk *walk, const json_t *schema, const json_t *value)
{
    (void)schema;
    if (!json_is_string(value))
        return schema_report(walk, -EINVAL, "title must be a string");
    return 0;
}

static int schema_check_description(schema_walk *walk, const json_t *schema, const json_t *value)
{
    (void)schema;
    if (!json_is_string(value))
        return schema_report(walk, -EINVAL, "description must be a string");
    return 0;
}

typedef struct schema_keyword {
    const char *name;
    int (*check)(schema_walk *walk, const json_t *schema, const json_t *value);
} schema_keyword;

static const schema_keyword schema_keywords[] = {
    {"bsonType", schema_check_bson_type},
    {"type", schema_check_json_type},
    {"properties", schema_check_properties},
    {"required", schema_check_required},
    {"items", schema_check_items},
    {"title", schema_check_title},
    {"description", schema_check_description},
};

static const schema_keyword *schema_find_keyword(const char *name)
{
    for (size_t i = 0; i < sizeof schema_keywords / sizeof schema_keywords[0]; i++) {
        if (strcmp(schema_keywords[i].name, name) == 0)
            return &schema_keywords[i];
    }
    return NULL;
}

/* Every keyword of a node must be one we support: a keyword we ignored
 * (minimum, enum, ...) would let through documents the server rejects. */
static int schema_check_node(schema_walk *walk, const json_t *schema)
{
    if (!json_is_object(schema))
        return schema_report(walk, -EINVAL, "schema must be an object");
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)schema, name, value) {
        const schema_keyword *keyword = schema_find_keyword(name);
        if (keyword == NULL)
            return schema_report(walk, -EINVAL, "unsupported keyword \"%s\"", name);
        int result = keyword->check(walk, schema, value);
        if (result != 0)
            return result;
    }
    return 0;
}

int schema_check(const json_t *schema, char *message, size_t message_size)
{
    schema_walk walk;
    schema_walk_start(&walk, false, message, message_size);
    return schema_check_node(&walk, schema);
}

/* ---- schema_validate_document ---- */

static unsigned schema_accepts_flag_of(value_type type)
{
    switch (type) {
    case VALUE_NULL: return SCHEMA_ACCEPTS_NULL;
    case VALUE_BOOL: return SCHEMA_ACCEPTS_BOOL;
    case VALUE_INT: return SCHEMA_ACCEPTS_LONG;
    case VALUE_DOUBLE: return SCHEMA_ACCEPTS_DOUBLE;
    case VALUE_DECIMAL: return SCHEMA_ACCEPTS_DECIMAL;
    case VALUE_STRING: return SCHEMA_ACCEPTS_STRING;
    case VALUE_OBJECT_ID: return SCHEMA_ACCEPTS_OBJECT_ID;
    case VALUE_DATE: return SCHEMA_ACCEPTS_DATE;
    case VALUE_UUID: return SCHEMA_ACCEPTS_UUID;
    case VALUE_BINARY: return SCHEMA_ACCEPTS_BINARY;
    case VALUE_ARRAY: return SCHEMA_ACCEPTS_ARRAY;
    case VALUE_DOCUMENT: return SCHEMA_ACCEPTS_OBJECT;
    }
    return 0;
}

/* An integer is kept when an integer type takes it; otherwise it becomes a
 * double, and only failing that a decimal, since a double is what a JSON
 * number most often means. */
static bool schema_match_integer(unsigned accepts, json_int_t number, schema_conversion *conversion)
{
    bool fits_int = number >= INT32_MIN && number <= INT32_MAX;
    if ((accepts & SCHEMA_ACCEPTS_LONG) || ((accepts & SCHEMA_ACCEPTS_INT) && fits_int))
        *conversion = SCHEMA_KEEP;
    else if (accepts & SCHEMA_ACCEPTS_DOUBLE)
        *conversion = SCHEMA_TO_DOUBLE;
    else if (accepts & SCHEMA_ACCEPTS_DECIMAL)
        *conversion = SCHEMA_TO_DECIMAL;
    else
        return false;
    return true;
}

/* Whether a value matches what a schema accepts, and if so how to store it. */
static bool schema_match(unsigned accepts, const json_t *value, schema_conversion *conversion)
{
    *conversion = SCHEMA_KEEP;
    if (accepts & SCHEMA_ACCEPTS_ANYTHING)
        return true;
    value_type type = value_type_of(value);
    if (type == VALUE_INT)
        return schema_match_integer(accepts, json_integer_value(value), conversion);
    if (accepts & schema_accepts_flag_of(type))
        return true;
    if (type == VALUE_DOUBLE && (accepts & SCHEMA_ACCEPTS_DECIMAL)) {
        *conversion = SCHEMA_TO_DECIMAL;
        return true;
    }
    return false;
}

/* "string", "string or null", "int, long or double": the names the schema
 * gives, in its own words. */
static void schema_describe_expected(const json_t *schema, char *text, size_t size)
{
    const json_t *names = json_object_get(schema, schema_bson_type_keyword.keyword);
    if (names == NULL)
        names = json_object_get(schema, schema_json_type_keyword.keyword);
    if (json_is_string(names)) {
        snprintf(text, size, "%s", json_string_value(names));
        return;
    }
    size_t count = json_array_size(names);
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < count && used < size; i++) {
        const char *separator = i == 0 ? "" : i + 1 == count ? " or " : ", ";
        int written = snprintf(text + used, size - used, "%s%s", separator,
                               json_string_value(json_array_get(names, i)));
        if (written < 0)
            return;
        used += (size_t)written;
    }
}

/* A double as decimal text: the fewest significant digits (at most 17)
 * that read back as the same double, so 0.1 becomes "0.1" rather than its
 * exact binary expansion.  Non-finite doubles keep their names.  Relies on
 * the C locale's '.' decimal point, which the daemon never changes. */
static void schema_format_double_as_decimal(double number, char *text, size_t size)
{
    if (isnan(number)) {
        snprintf(text, size, "NaN");
        return;
    }
    if (isinf(number)) {
        snprintf(text, size, "%s", number > 0 ? "Infinity" : "-Infinity");
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(text, size, "%.*g", digits, number);
        if (strtod(text, NULL) == number)
            return;
    }
}

/* The value to store in place of a matched number, or NULL when out of
 * memory.  An integer beyond 2^53 becomes the nearest double, as it would
 * in any BSON double field. */
static json_t *schema_convert(const json_t *value, schema_conversion conversion)
{
    if (conversion == SCHEMA_TO_DOUBLE)
        return json_real((double)json_integer_value(value));
    char text[64];
    if (json_is_integer(value)) {
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    } else {
        long double number = 0; /* every double, finite or not, has one */
        (void)value_get_number(value, &number);
        schema_format_double_as_decimal((double)number, text, sizeof text);
    }
    return value_new_decimal(text);
}

static int schema_validate_value(schema_walk *walk, const json_t *schema, json_t *value,
                                 schema_conversion *conversion);

/*
 * Validates a field or array element.  When the walk converts and the
 * value must be stored as another number type, *replacement receives the
 * new value for the caller to put in its place; otherwise NULL.
 */
static int schema_validate_member(schema_walk *walk, const json_t *schema, json_t *value,
                                  json_t **replacement)
{
    schema_conversion conversion;
    *replacement = NULL;
    int result = schema_validate_value(walk, schema, value, &conversion);
    if (result == 0 && conversion != SCHEMA_KEEP)
        walk->conversion_found = true;
    if (result != 0 || conversion == SCHEMA_KEEP || !walk->convert)
        return result;
    *replacement = schema_convert(value, conversion);
    if (*replacement == NULL)
        return schema_report(walk, -ENOMEM, "out of memory");
    return 0;
}

static bool schema_is_required(const json_t *schema, const char *field)
{
    const json_t *required = json_object_get(schema, "required");
    size_t index;
    const json_t *name;
    json_array_foreach(required, index, name) {
        if (strcmp(json_string_value(name), field) == 0)
            return true;
    }
    return false;
}

/* Realm optional properties hold null whatever their type. */
static int schema_validate_field(schema_walk *walk, const json_t *schema, json_t *document,
                                 void *iterator)
{
    const char *field = json_object_iter_key(iterator);
    json_t *value = json_object_iter_value(iterator);
    const json_t *properties = json_object_get(schema, "properties");
    if (properties == NULL)
        return 0;
    const json_t *field_schema = json_object_get(properties, field);
    if (field_schema == NULL)
        return schema_report(walk, -EINVAL, "field not in schema");
    if (json_is_null(value) && !schema_is_required(schema, field))
        return 0;
    json_t *replacement;
    int result = schema_validate_member(walk, field_schema, value, &replacement);
    if (replacement != NULL && json_object_iter_set_new(document, iterator, replacement) != 0)
        return schema_report(walk, -ENOMEM, "out of memory");
    return result;
}

static int schema_validate_required(schema_walk *walk, const json_t *schema, const json_t *document)
{
    const json_t *required = json_object_get(schema, "required");
    size_t index;
    const json_t *name;
    json_array_foreach(required, index, name) {
        const char *field = json_string_value(name);
        if (json_object_get(document, field) != NULL)
            continue;
        schema_path_push_name(walk, field);
        return schema_report(walk, -EINVAL, "required field is missing");
    }
    return 0;
}

/* Fields are checked in document order before the required list, so a
 * misspelt field is reported as itself rather than as the missing one. */
static int schema_validate_fields(schema_walk *walk, const json_t *schema, json_t *document)
{
    for (void *iterator = json_object_iter(document); iterator != NULL;
         iterator = json_object_iter_next(document, iterator)) {
        size_t previous_path = schema_path_push_name(walk, json_object_iter_key(iterator));
        int result = schema_validate_field(walk, schema, document, iterator);
        if (result != 0)
            return result;
        schema_path_restore(walk, previous_path);
    }
    return schema_validate_required(walk, schema, document);
}

static int schema_validate_items(schema_walk *walk, const json_t *schema, json_t *array)
{
    const json_t *items = json_object_get(schema, "items");
    if (items == NULL)
        return 0;
    for (size_t index = 0; index < json_array_size(array); index++) {
        size_t previous_path = schema_path_push_index(walk, index);
        json_t *replacement;
        int result = schema_validate_member(walk, items, json_array_get(array, index), &replacement);
        if (replacement != NULL && json_array_set_new(array, index, replacement) != 0)
            return schema_report(walk, -ENOMEM, "out of memory");
        if (result != 0)
            return result;
        schema_path_restore(walk, previous_path);
    }
    return 0;
}

/* Checks the value's type, then what the schema says about its contents:
 * properties and required for a document, items for an array. */
static int schema_validate_value(schema_walk *walk, const json_t *schema, json_t *value,
                                 schema_conversion *conversion)
{
    unsigned accepts;
    int result = schema_accepted_types(walk, schema, &accepts);
    if (result != 0)
        return result;
    if (!schema_match(accepts, value, conversion)) {
        char expected[256];
        schema_describe_expected(schema, expected, sizeof expected);
        return schema_report(walk, -EINVAL, "expected %s, found %s", expected,
                             value_type_name(value_type_of(value)));
    }
    switch (value_type_of(value)) {
    case VALUE_DOCUMENT:
        return schema_validate_fields(walk, schema, value);
    case VALUE_ARRAY:
        return schema_validate_items(walk, schema, value);
    default:
        return 0;
    }
}

static int schema_validate_root(schema_walk *walk, const json_t *schema, json_t *document)
{
    if (value_type_of(document) != VALUE_DOCUMENT)
        return schema_report(walk, -EINVAL, "not a document");
    schema_conversion conversion; /* always SCHEMA_KEEP for a document */
    return schema_validate_value(walk, schema, document, &conversion);
}

/* Two walks: the first only validates, so that a document that fails is
 * left exactly as it was; the second, when the first found a number to
 * convert, converts and can then fail only for want of memory. */
int schema_validate_document(const json_t *schema, json_t *document,
                             char *message, size_t message_size)
{
    schema_walk walk;
    schema_walk_start(&walk, false, message, message_size);
    int result = schema_validate_root(&walk, schema, document);
    if (result != 0 || !walk.conversion_found)
        return result;
    schema_walk_start(&walk, true, message, message_size);
    return schema_validate_root(&walk, schema, document);
}

static int schema_strip_value(const json_t *schema, json_t *value);

/* A document whose schema has no "properties" takes any field, and says
 * nothing of what is below them.  The next iterator is taken before a
 * field is deleted, which jansson allows (json_object_foreach_safe does
 * the same). */
static int schema_strip_fields(const json_t *schema, json_t *document)
{
    const json_t *properties = json_object_get(schema, "properties");
    if (properties == NULL)
        return 0;
    int removed = 0;
    void *iterator = json_object_iter(document);
    while (iterator != NULL) {
        const char *field = json_object_iter_key(iterator);
        void *next = json_object_iter_next(document, iterator);
        const json_t *field_schema = json_object_get(properties, field);
        if (field_schema == NULL) {
            json_object_del(document, field);
            removed++;
        } else {
            removed += schema_strip_value(field_schema, json_object_iter_value(iterator));
        }
        iterator = next;
    }
    return removed;
}

static int schema_strip_value(const json_t *schema, json_t *value)
{
    const json_t *items = json_object_get(schema, "items");
    int removed = 0;
    switch (value_type_of(value)) {
    case VALUE_DOCUMENT:
        return schema_strip_fields(schema, value);
    case VALUE_ARRAY:
        for (size_t index = 0; items != NULL && index < json_array_size(value); index++)
            removed += schema_strip_value(items, json_array_get(value, index));
        return removed;
    default:
        return 0;
    }
}

int schema_strip_unknown_fields(const json_t *schema, json_t *document)
{
    if (value_type_of(document) != VALUE_DOCUMENT)
        return -EINVAL;
    return schema_strip_fields(schema, document);
}

/*
 * filter.c — App Services rule expressions (see filter.h).
 *
 * filter_parse compiles the JSON expression into a tree of filter_node, and
 * filter_matches walks that tree.  A FIELD node names the subject its
 * subtree tests (a document path, or an expansion used as a key); the
 * COMPARE nodes below it test that subject.  So several operators on one
 * field are an AND node, and $ne, $nin, $not and "$exists": false are NOR
 * nodes with one child, as MongoDB defines them.
 */
#include "realmfs/filter.h"

#include "realmfs/ejson.h"
#include "realmfs/value.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_MAX_DEPTH 100
#define FILTER_OBJECT_ID_DIGITS (2 * VALUE_OBJECT_ID_SIZE)

/* ------------------------------------------------------------------------ */
/* The compiled tree                                                        */

typedef enum filter_operand_kind {
    FILTER_OPERAND_LITERAL,          /* literal: a normalized value */
    FILTER_OPERAND_ARRAY,            /* items, some of them expansions */
    FILTER_OPERAND_DOCUMENT,         /* keys[i]: items[i], some items expansions */
    FILTER_OPERAND_USER_ID,          /* %%user.id */
    FILTER_OPERAND_USER_TYPE,        /* %%user.type */
    FILTER_OPERAND_USER_DATA,        /* %%user.data[.path] */
    FILTER_OPERAND_USER_CUSTOM_DATA, /* %%user.custom_data[.path] */
    FILTER_OPERAND_STRING_TO_OID,    /* {"%stringToOid": items[0]} */
    FILTER_OPERAND_OID_TO_STRING,    /* {"%oidToString": items[0]} */
} filter_operand_kind;

typedef struct filter_operand filter_operand;
struct filter_operand {
    filter_operand_kind kind;
    json_t *literal;
    char *path; /* inside data or custom_data; "" for the whole of it */
    char **keys;
    filter_operand **items;
    size_t item_count;
};

typedef enum filter_node_kind {
    FILTER_NODE_CONSTANT, /* constant */
    FILTER_NODE_AND,      /* every child */
    FILTER_NODE_OR,       /* some child */
    FILTER_NODE_NOR,      /* no child; with one child, a NOT */
    FILTER_NODE_FIELD,    /* children[0] tests subject */
    FILTER_NODE_COMPARE,  /* tests the subject of the FIELD node above */
} filter_node_kind;

typedef enum filter_comparison {
    FILTER_EQUAL,
    FILTER_GREATER,
    FILTER_GREATER_OR_EQUAL,
    FILTER_LESS,
    FILTER_LESS_OR_EQUAL,
    FILTER_IN,
    FILTER_ALL,
    FILTER_EXISTS,
} filter_comparison;

/* What a FIELD node tests: a document path, or else an expansion. */
typedef struct filter_subject {
    char *path;
    filter_operand *expansion;
} filter_subject;

typedef struct filter_node filter_node;
struct filter_node {
    filter_node_kind kind;
    bool constant;
    filter_node **children;
    size_t child_count;
    filter_subject subject;
    filter_comparison comparison;
    filter_operand *operand; /* NULL for FILTER_EXISTS */
};

struct filter {
    filter_node *root;
};

typedef struct filter_operator {
    const char *name;
    filter_comparison comparison;
    bool negated;
} filter_operator;

/* The field operators other than $not, which wraps them. */
static const filter_operator filter_operators[] = {
    {"$eq", FILTER_EQUAL, false},
    {"$ne", FILTER_EQUAL, true},
    {"$gt", FILTER_GREATER, false},
    {"$gte", FILTER_GREATER_OR_EQUAL, false},
    {"$lt", FILTER_LESS, false},
    {"$lte", FILTER_LESS_OR_EQUAL, false},
    {"$in", FILTER_IN, false},
    {"$nin", FILTER_IN, true},
    {"$all", FILTER_ALL, false},
    {"$exists", FILTER_EXISTS, false},
};

static const filter_operator *filter_find_operator(const char *name)
{
    for (size_t i = 0; i < sizeof filter_operators / sizeof filter_operators[0]; i++)
        if (strcmp(filter_operators[i].name, name) == 0)
            return &filter_operators[i];
    return NULL;
}

static bool filter_is_field_operator(const char *name)
{
    return strcmp(name, "$not") == 0 || filter_find_operator(name) != NULL;
}

static void filter_operand_free(filter_operand *operand)
{
    if (operand == NULL)
        return;
    json_decref(operand->literal);
    free(operand->path);
    for (size_t i = 0; i < operand->item_count; i++) {
        if (operand->keys != NULL)
            free(operand->keys[i]);
        filter_operand_free(operand->items[i]);
    }
    free(operand->keys);
    free(operand->items);
    free(operand);
}

static void filter_node_free(filter_node *node)
{
    if (node == NULL)
        return;
    for (size_t i = 0; i < node->child_count; i++)
        filter_node_free(node->children[i]);
    free(node->children);
    free(node->subject.path);
    filter_operand_free(node->subject.expansion);
    filter_operand_free(node->operand);
    free(node);
}

void filter_free(filter *filter)
{
    if (filter == NULL)
        return;
    filter_node_free(filter->root);
    free(filter);
}

/* ------------------------------------------------------------------------ */
/* Error messages                                                           */

/* Where the parser is in the expression, as a chain back to the root, so
 * an error can name its key path without the parser building strings. */
typedef struct filter_location filter_location;
struct filter_location {
    const filter_location *parent;
    const char *key; /* NULL for an array element */
    size_t index;
    int depth;
};

typedef struct filter_parser {
    const char *source_name;
    char *message;
    size_t message_size;
} filter_parser;

static filter_location filter_location_key(const filter_location *parent, const char *key)
{
    return (filter_location){parent, key, 0, parent != NULL ? parent->depth + 1 : 1};
}

static filter_location filter_location_index(const filter_location *parent, size_t index)
{
    return (filter_location){parent, NULL, index, parent != NULL ? parent->depth + 1 : 1};
}

/* Append to a message of *length bytes; text that does not fit is cut. */
static void filter_append_va(filter_parser *parser, size_t *length, const char *format,
                             va_list arguments)
{
    size_t room = parser->message_size - *length;
    int written = vsnprintf(parser->message + *length, room, format, arguments);
    if (written < 0)
        return;
    *length += (size_t)written < room ? (size_t)written : room - 1;
}

static void filter_append(filter_parser *parser, size_t *length, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    filter_append_va(parser, length, format, arguments);
    va_end(arguments);
}

static void filter_append_location(filter_parser *parser, size_t *length,
                                   const filter_location *location)
{
    if (location == NULL)
        return;
    filter_append_location(parser, length, location->parent);
    if (location->key == NULL)
        filter_append(parser, length, "[%zu]", location->index);
    else
        filter_append(parser, length, "%s%s", *length > 0 ? "." : "", location->key);
}

/* Fill the caller's message: "<source_name>.<key path>: <what>". */
static void filter_fail(filter_parser *parser, const filter_location *location,
                        const char *format, ...)
{
    if (parser->message == NULL || parser->message_size == 0)
        return;
    size_t length = 0;
    parser->message[0] = '\0';
    if (parser->source_name != NULL)
        filter_append(parser, &length, "%s", parser->source_name);
    filter_append_location(parser, &length, location);
    if (length > 0)
        filter_append(parser, &length, ": ");
    va_list arguments;
    va_start(arguments, format);
    filter_append_va(parser, &length, format, arguments);
    va_end(arguments);
}

static void *filter_out_of_memory(filter_parser *parser, const filter_location *location)
{
    filter_fail(parser, location, "out of memory");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Parsing values                                                           */

static filter_operand *filter_parse_operand(filter_parser *parser, const json_t *value,
                                            const filter_location *location);

static bool filter_too_deep(filter_parser *parser, const filter_location *location)
{
    if (location == NULL || location->depth <= FILTER_MAX_DEPTH)
        return false;
    filter_fail(parser, location, "nested deeper than %d levels", FILTER_MAX_DEPTH);
    return true;
}

/* Names reach this module as C strings, so one holding NUL would be cut. */
static bool filter_key_has_nul(const char *key)
{
    return json_object_iter_key_len(json_object_key_to_iter(key)) != strlen(key);
}

/* A dotted path must name a field at every step, as MongoDB requires;
 * "$" steps (positional operators) are not supported. */
static bool filter_check_path(filter_parser *parser, const char *path,
                              const filter_location *location)
{
    for (const char *step = path;; step++) {
        size_t length = strcspn(step, ".");
        if (length == 0) {
            filter_fail(parser, location, "field path \"%s\" has an empty field name", path);
            return false;
        }
        if (step[0] == '$') {
            filter_fail(parser, location, "field path \"%s\" has a name starting with '$'", path);
            return false;
        }
        step += length;
        if (*step == '\0')
            return true;
    }
}

static filter_operand *filter_operand_new(filter_parser *parser, filter_operand_kind kind,
                                          const filter_location *location)
{
    filter_operand *operand = calloc(1, sizeof *operand);
    if (operand == NULL)
        return filter_out_of_memory(parser, location);
    operand->kind = kind;
    return operand;
}

static filter_operand *filter_literal_new(filter_parser *parser, json_t *literal,
                                          const filter_location *location)
{
    filter_operand *operand = filter_operand_new(parser, FILTER_OPERAND_LITERAL, location);
    if (operand == NULL) {
        json_decref(literal);
        return NULL;
    }
    operand->literal = literal;
    return operand;
}

/* Room for count sub-operands; item_count grows as they are parsed, so a
 * half-built operand frees cleanly. */
static bool filter_operand_reserve(filter_parser *parser, filter_operand *operand, size_t count,
                                   bool with_keys, const filter_location *location)
{
    operand->items = calloc(count > 0 ? count : 1, sizeof *operand->items);
    if (with_keys)
        operand->keys = calloc(count > 0 ? count : 1, sizeof *operand->keys);
    if (operand->items == NULL || (with_keys && operand->keys == NULL)) {
        filter_out_of_memory(parser, location);
        return false;
    }
    return true;
}

/* A user expansion reading a dotted path inside data or custom_data: rest
 * is "" for the whole document, or "." and the path. */
static filter_operand *filter_user_path_new(filter_parser *parser, filter_operand_kind kind,
                                            const char *rest, const filter_location *location)
{
    const char *path = *rest == '.' ? rest + 1 : rest;
    if (*rest == '.' && !filter_check_path(parser, path, location))
        return NULL;
    filter_operand *operand = filter_operand_new(parser, kind, location);
    if (operand == NULL)
        return NULL;
    operand->path = strdup(path);
    if (operand->path == NULL) {
        filter_operand_free(operand);
        return filter_out_of_memory(parser, location);
    }
    return operand;
}

/* What follows prefix in an expansion ("" or "." and a path), or NULL when
 * the expansion does not start with prefix as a whole step. */
static const char *filter_after_prefix(const char *expansion, const char *prefix)
{
    size_t length = strlen(prefix);
    if (strncmp(expansion, prefix, length) != 0)
        return NULL;
    if (expansion[length] != '\0' && expansion[length] != '.')
        return NULL;
    return expansion + length;
}

static filter_operand *filter_parse_expansion(filter_parser *parser, const char *expansion,
                                              size_t length, const filter_location *location)
{
    const char *rest;
    if (strlen(expansion) != length)
        filter_fail(parser, location, "unsupported expansion with a NUL byte");
    else if (strcmp(expansion, "%%true") == 0)
        return filter_literal_new(parser, json_true(), location);
    else if (strcmp(expansion, "%%false") == 0)
        return filter_literal_new(parser, json_false(), location);
    else if (strcmp(expansion, "%%user.id") == 0)
        return filter_operand_new(parser, FILTER_OPERAND_USER_ID, location);
    else if (strcmp(expansion, "%%user.type") == 0)
        return filter_operand_new(parser, FILTER_OPERAND_USER_TYPE, location);
    else if ((rest = filter_after_prefix(expansion, "%%user.data")) != NULL)
        return filter_user_path_new(parser, FILTER_OPERAND_USER_DATA, rest, location);
    else if ((rest = filter_after_prefix(expansion, "%%user.custom_data")) != NULL)
        return filter_user_path_new(parser, FILTER_OPERAND_USER_CUSTOM_DATA, rest, location);
    else
        filter_fail(parser, location, "unsupported expansion %s", expansion);
    return NULL;
}

/* The ObjectId a string of 24 hex digits (any case) stands for: a new
 * reference, or NULL when the string is not one.  ejson does the decoding,
 * so its NULL after the check here can only mean out of memory. */
static json_t *filter_string_to_object_id(const json_t *string, bool *out_of_memory)
{
    if (!json_is_string(string) || json_string_length(string) != FILTER_OBJECT_ID_DIGITS ||
        strspn(json_string_value(string), "0123456789abcdefABCDEF") != FILTER_OBJECT_ID_DIGITS)
        return NULL;
    json_t *wrapper = json_pack("{sO}", "$oid", string);
    json_t *object_id = wrapper != NULL ? ejson_normalize(wrapper, &(ejson_error){0}) : NULL;
    json_decref(wrapper);
    if (object_id == NULL)
        *out_of_memory = true;
    return object_id;
}

/* The 24 lowercase hex digits of an ObjectId (the string inside its
 * normalized form): a new reference, or NULL when value is no ObjectId. */
static json_t *filter_object_id_to_string(const json_t *value)
{
    if (value == NULL || value_type_of(value) != VALUE_OBJECT_ID)
        return NULL;
    return json_incref(json_object_get(value, "$oid"));
}

/* %stringToOid or %oidToString applied to value (NULL when missing). */
static json_t *filter_convert(filter_operand_kind kind, const json_t *value, bool *out_of_memory)
{
    if (kind == FILTER_OPERAND_STRING_TO_OID)
        return filter_string_to_object_id(value, out_of_memory);
    return filter_object_id_to_string(value);
}

/* A conversion of a literal is done once here, which also refuses an
 * argument that could never convert. */
static filter_operand *filter_fold_conversion(filter_parser *parser, filter_operand *conversion,
                                              const char *name, const filter_location *location)
{
    bool out_of_memory = false;
    json_t *converted = filter_convert(conversion->kind, conversion->items[0]->literal,
                                       &out_of_memory);
    const char *needs = conversion->kind == FILTER_OPERAND_STRING_TO_OID
                            ? "a string of 24 hexadecimal digits"
                            : "an ObjectId";
    filter_operand_free(conversion);
    if (out_of_memory)
        return filter_out_of_memory(parser, location);
    if (converted == NULL) {
        filter_fail(parser, location, "%s needs %s", name, needs);
        return NULL;
    }
    return filter_literal_new(parser, converted, location);
}

static filter_operand *filter_parse_conversion(filter_parser *parser, const json_t *object,
                                               const filter_location *location)
{
    void *only = json_object_iter((json_t *)object);
    const char *name = json_object_iter_key(only);
    if (filter_key_has_nul(name)) {
        filter_fail(parser, location, "key with a NUL byte");
        return NULL;
    }
    filter_operand_kind kind;
    if (strcmp(name, "%stringToOid") == 0)
        kind = FILTER_OPERAND_STRING_TO_OID;
    else if (strcmp(name, "%oidToString") == 0)
        kind = FILTER_OPERAND_OID_TO_STRING;
    else {
        filter_fail(parser, location, "unsupported operator %s", name);
        return NULL;
    }
    if (json_object_size(object) != 1) {
        filter_fail(parser, location, "%s must be the only key of its document", name);
        return NULL;
    }
    filter_location inner = filter_location_key(location, name);
    filter_operand *conversion = filter_operand_new(parser, kind, location);
    if (conversion == NULL || !filter_operand_reserve(parser, conversion, 1, false, location)) {
        filter_operand_free(conversion);
        return NULL;
    }
    conversion->items[0] = filter_parse_operand(parser, json_object_iter_value(only), &inner);
    if (conversion->items[0] == NULL) {
        filter_operand_free(conversion);
        return NULL;
    }
    conversion->item_count = 1;
    if (conversion->items[0]->kind == FILTER_OPERAND_LITERAL)
        return filter_fold_conversion(parser, conversion, name, &inner);
    return conversion;
}

/* A value that is all literal: Extended JSON wrappers become normalized. */
static filter_operand *filter_parse_literal(filter_parser *parser, const json_t *value,
                                            const filter_location *location)
{
    ejson_error error = {0};
    json_t *literal = ejson_normalize(value, &error);
    if (literal != NULL)
        return filter_literal_new(parser, literal, location);
    if (json_is_object(value))
        filter_fail(parser, location, "unsupported operator %s (as a value: %s)",
                    json_object_iter_key(json_object_iter((json_t *)value)), error.message);
    else
        filter_fail(parser, location, "%s", error.message);
    return NULL;
}

static filter_operand *filter_parse_array_value(filter_parser *parser, const json_t *array,
                                                const filter_location *location)
{
    filter_operand *operand = filter_operand_new(parser, FILTER_OPERAND_ARRAY, location);
    if (operand == NULL ||
        !filter_operand_reserve(parser, operand, json_array_size(array), false, location)) {
        filter_operand_free(operand);
        return NULL;
    }
    size_t index;
    const json_t *element;
    json_array_foreach(array, index, element) {
        filter_location inner = filter_location_index(location, index);
        operand->items[index] = filter_parse_operand(parser, element, &inner);
        if (operand->items[index] == NULL) {
            filter_operand_free(operand);
            return NULL;
        }
        operand->item_count++;
    }
    return operand;
}

/* The keys of a document given as a value are plain field names: neither
 * operators nor expansions. */
static bool filter_check_value_key(filter_parser *parser, const char *key,
                                   const filter_location *location)
{
    if (filter_key_has_nul(key))
        filter_fail(parser, location, "field name with a NUL byte");
    else if (key[0] == '$' || key[0] == '%')
        filter_fail(parser, location, "field names inside a value may not start with '%c'",
                    key[0]);
    else
        return true;
    return false;
}

static bool filter_add_document_item(filter_parser *parser, filter_operand *operand,
                                     const char *key, const json_t *value,
                                     const filter_location *location)
{
    if (!filter_check_value_key(parser, key, location))
        return false;
    operand->keys[operand->item_count] = strdup(key);
    if (operand->keys[operand->item_count] == NULL) {
        filter_out_of_memory(parser, location);
        return false;
    }
    operand->items[operand->item_count] = filter_parse_operand(parser, value, location);
    if (operand->items[operand->item_count] == NULL) {
        free(operand->keys[operand->item_count]);
        return false;
    }
    operand->item_count++;
    return true;
}

static filter_operand *filter_parse_document_value(filter_parser *parser, const json_t *object,
                                                   const filter_location *location)
{
    filter_operand *operand = filter_operand_new(parser, FILTER_OPERAND_DOCUMENT, location);
    if (operand == NULL ||
        !filter_operand_reserve(parser, operand, json_object_size(object), true, location)) {
        filter_operand_free(operand);
        return NULL;
    }
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)object, key, value) {
        filter_location inner = filter_location_key(location, key);
        if (!filter_add_document_item(parser, operand, key, value, &inner)) {
            filter_operand_free(operand);
            return NULL;
        }
    }
    return operand;
}

/* A value to compare with: a literal, an expansion, a conversion, or an
 * array or document holding any of these. */
static filter_operand *filter_parse_operand(filter_parser *parser, const json_t *value,
                                            const filter_location *location)
{
    if (filter_too_deep(parser, location))
        return NULL;
    if (json_is_string(value) && strncmp(json_string_value(value), "%%", 2) == 0)
        return filter_parse_expansion(parser, json_string_value(value), json_string_length(value),
                                      location);
    if (json_is_array(value))
        return filter_parse_array_value(parser, value, location);
    if (!json_is_object(value) || json_object_size(value) == 0)
        return filter_parse_literal(parser, value, location);
    const char *first_key = json_object_iter_key(json_object_iter((json_t *)value));
    if (first_key[0] == '$')
        return filter_parse_literal(parser, value, location);
    if (first_key[0] == '%')
        return filter_parse_conversion(parser, value, location);
    return filter_parse_document_value(parser, value, location);
}

/* ------------------------------------------------------------------------ */
/* Parsing expressions                                                      */

static filter_node *filter_parse_document(filter_parser *parser, const json_t *object,
                                          const filter_location *location);
static filter_node *filter_parse_operators(filter_parser *parser, const json_t *object,
                                           const filter_location *location);

static filter_node *filter_node_new(filter_parser *parser, filter_node_kind kind,
                                    const filter_location *location)
{
    filter_node *node = calloc(1, sizeof *node);
    if (node == NULL)
        return filter_out_of_memory(parser, location);
    node->kind = kind;
    return node;
}

/* A node with room for count children; child_count grows as they are
 * added, so a half-built node frees cleanly. */
static filter_node *filter_parent_new(filter_parser *parser, filter_node_kind kind, size_t count,
                                      const filter_location *location)
{
    filter_node *node = filter_node_new(parser, kind, location);
    if (node == NULL)
        return NULL;
    node->children = calloc(count > 0 ? count : 1, sizeof *node->children);
    if (node->children == NULL) {
        filter_node_free(node);
        return filter_out_of_memory(parser, location);
    }
    return node;
}

/* Wrap child in a NOR of one, freeing child when that fails. */
static filter_node *filter_negate(filter_parser *parser, filter_node *child,
                                  const filter_location *location)
{
    if (child == NULL)
        return NULL;
    filter_node *negation = filter_parent_new(parser, FILTER_NODE_NOR, 1, location);
    if (negation == NULL) {
        filter_node_free(child);
        return NULL;
    }
    negation->children[0] = child;
    negation->child_count = 1;
    return negation;
}

static filter_node *filter_compare_new(filter_parser *parser, filter_comparison comparison,
                                       filter_operand *operand, const filter_location *location)
{
    filter_node *node = filter_node_new(parser, FILTER_NODE_COMPARE, location);
    if (node == NULL) {
        filter_operand_free(operand);
        return NULL;
    }
    node->comparison = comparison;
    node->operand = operand;
    return node;
}

/* $exists takes a boolean or, as in MongoDB, a number (0 is false). */
static filter_node *filter_parse_exists(filter_parser *parser, const json_t *value,
                                        const filter_location *location)
{
    filter_operand *operand = filter_parse_operand(parser, value, location);
    if (operand == NULL)
        return NULL;
    const json_t *flag = operand->kind == FILTER_OPERAND_LITERAL ? operand->literal : NULL;
    bool valid = json_is_boolean(flag) || json_is_number(flag);
    bool exists = json_is_true(flag) || (json_is_number(flag) && json_number_value(flag) != 0);
    filter_operand_free(operand);
    if (!valid) {
        filter_fail(parser, location, "$exists needs true or false");
        return NULL;
    }
    filter_node *node = filter_compare_new(parser, FILTER_EXISTS, NULL, location);
    return exists ? node : filter_negate(parser, node, location);
}

/* The list of $in, $nin and $all: an array, or an expansion expected to
 * hold one. */
static filter_operand *filter_parse_list(filter_parser *parser, const json_t *value,
                                         const char *name, const filter_location *location)
{
    filter_operand *operand = filter_parse_operand(parser, value, location);
    if (operand == NULL)
        return NULL;
    if (operand->kind == FILTER_OPERAND_LITERAL || operand->kind == FILTER_OPERAND_DOCUMENT) {
        filter_operand_free(operand);
        filter_fail(parser, location, "%s needs an array", name);
        return NULL;
    }
    return operand;
}

static filter_node *filter_parse_not(filter_parser *parser, const json_t *value,
                                     const filter_location *location)
{
    void *first = json_is_object(value) ? json_object_iter((json_t *)value) : NULL;
    if (first == NULL || !filter_is_field_operator(json_object_iter_key(first))) {
        filter_fail(parser, location, "$not needs a document of operators");
        return NULL;
    }
    return filter_negate(parser, filter_parse_operators(parser, value, location), location);
}

static filter_node *filter_parse_operator(filter_parser *parser, const char *name,
                                          const json_t *value, const filter_location *location)
{
    if (strcmp(name, "$not") == 0)
        return filter_parse_not(parser, value, location);
    const filter_operator *field_operator = filter_find_operator(name);
    if (field_operator == NULL) {
        filter_fail(parser, location, "unsupported operator %s", name);
        return NULL;
    }
    if (field_operator->comparison == FILTER_EXISTS)
        return filter_parse_exists(parser, value, location);
    filter_operand *operand =
        field_operator->comparison == FILTER_IN || field_operator->comparison == FILTER_ALL
            ? filter_parse_list(parser, value, name, location)
            : filter_parse_operand(parser, value, location);
    if (operand == NULL)
        return NULL;
    filter_node *node = filter_compare_new(parser, field_operator->comparison, operand, location);
    return field_operator->negated ? filter_negate(parser, node, location) : node;
}

/* {"$gt": 1, "$lt": 5}: every operator must hold. */
static filter_node *filter_parse_operators(filter_parser *parser, const json_t *object,
                                           const filter_location *location)
{
    filter_node *node =
        filter_parent_new(parser, FILTER_NODE_AND, json_object_size(object), location);
    if (node == NULL)
        return NULL;
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)object, name, value) {
        filter_location inner = filter_location_key(location, name);
        filter_node *child = NULL;
        if (filter_key_has_nul(name))
            filter_fail(parser, &inner, "key with a NUL byte");
        else if (!filter_too_deep(parser, &inner))
            child = filter_parse_operator(parser, name, value, &inner);
        if (child == NULL) {
            filter_node_free(node);
            return NULL;
        }
        node->children[node->child_count++] = child;
    }
    return node;
}

/* What a key of the document level requires of its subject: operators when
 * the value is a document starting with one, equality otherwise. */
static filter_node *filter_parse_condition(filter_parser *parser, const json_t *value,
                                           const filter_location *location)
{
    void *first = json_is_object(value) ? json_object_iter((json_t *)value) : NULL;
    if (first != NULL && filter_is_field_operator(json_object_iter_key(first)))
        return filter_parse_operators(parser, value, location);
    filter_operand *operand = filter_parse_operand(parser, value, location);
    if (operand == NULL)
        return NULL;
    return filter_compare_new(parser, FILTER_EQUAL, operand, location);
}

static bool filter_parse_subject(filter_parser *parser, const char *key, filter_subject *subject,
                                 const filter_location *location)
{
    if (key[0] == '%' && key[1] == '%') {
        subject->expansion = filter_parse_expansion(parser, key, strlen(key), location);
        return subject->expansion != NULL;
    }
    if (key[0] == '%') {
        filter_fail(parser, location, "unsupported operator %s", key);
        return false;
    }
    if (!filter_check_path(parser, key, location))
        return false;
    subject->path = strdup(key);
    if (subject->path == NULL)
        filter_out_of_memory(parser, location);
    return subject->path != NULL;
}

static filter_node *filter_parse_field(filter_parser *parser, const char *key,
                                       const json_t *value, const filter_location *location)
{
    filter_node *node = filter_parent_new(parser, FILTER_NODE_FIELD, 1, location);
    if (node == NULL)
        return NULL;
    if (!filter_parse_subject(parser, key, &node->subject, location)) {
        filter_node_free(node);
        return NULL;
    }
    node->children[0] = filter_parse_condition(parser, value, location);
    if (node->children[0] == NULL) {
        filter_node_free(node);
        return NULL;
    }
    node->child_count = 1;
    return node;
}

/* $and, $or, $nor: a non-empty array of documents, as MongoDB requires. */
static filter_node *filter_parse_logical(filter_parser *parser, filter_node_kind kind,
                                         const char *name, const json_t *array,
                                         const filter_location *location)
{
    if (!json_is_array(array) || json_array_size(array) == 0) {
        filter_fail(parser, location, "%s needs a non-empty array of documents", name);
        return NULL;
    }
    filter_node *node = filter_parent_new(parser, kind, json_array_size(array), location);
    if (node == NULL)
        return NULL;
    size_t index;
    const json_t *element;
    json_array_foreach(array, index, element) {
        filter_location inner = filter_location_index(location, index);
        filter_node *child = NULL;
        if (json_is_object(element))
            child = filter_parse_document(parser, element, &inner);
        else
            filter_fail(parser, &inner, "%s needs a non-empty array of documents", name);
        if (child == NULL) {
            filter_node_free(node);
            return NULL;
        }
        node->children[node->child_count++] = child;
    }
    return node;
}

static filter_node *filter_parse_clause(filter_parser *parser, const char *key,
                                        const json_t *value, const filter_location *location)
{
    if (filter_key_has_nul(key))
        filter_fail(parser, location, "key with a NUL byte");
    else if (strcmp(key, "$and") == 0)
        return filter_parse_logical(parser, FILTER_NODE_AND, key, value, location);
    else if (strcmp(key, "$or") == 0)
        return filter_parse_logical(parser, FILTER_NODE_OR, key, value, location);
    else if (strcmp(key, "$nor") == 0)
        return filter_parse_logical(parser, FILTER_NODE_NOR, key, value, location);
    else if (filter_is_field_operator(key))
        filter_fail(parser, location, "operator %s applies to a field, not to a document", key);
    else if (key[0] == '$')
        filter_fail(parser, location, "unsupported operator %s", key);
    else
        return filter_parse_field(parser, key, value, location);
    return NULL;
}

/* A query document: every key must hold ({} always does). */
static filter_node *filter_parse_document(filter_parser *parser, const json_t *object,
                                          const filter_location *location)
{
    if (filter_too_deep(parser, location))
        return NULL;
    filter_node *node =
        filter_parent_new(parser, FILTER_NODE_AND, json_object_size(object), location);
    if (node == NULL)
        return NULL;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)object, key, value) {
        filter_location inner = filter_location_key(location, key);
        filter_node *child = filter_parse_clause(parser, key, value, &inner);
        if (child == NULL) {
            filter_node_free(node);
            return NULL;
        }
        node->children[node->child_count++] = child;
    }
    return node;
}

static filter_node *filter_parse_root(filter_parser *parser, const json_t *expression)
{
    if (json_is_object(expression))
        return filter_parse_document(parser, expression, NULL);
    if (!json_is_boolean(expression)) {
        filter_fail(parser, NULL, "an expression must be true, false or a document");
        return NULL;
    }
    filter_node *node = filter_node_new(parser, FILTER_NODE_CONSTANT, NULL);
    if (node != NULL)
        node->constant = json_is_true(expression);
    return node;
}

filter *filter_parse(const json_t *expression, const char *source_name, char *message,
                     size_t message_size)
{
    filter_parser parser = {source_name, message, message_size};
    filter *result = calloc(1, sizeof *result);
    if (result == NULL)
        return filter_out_of_memory(&parser, NULL);
    result->root = filter_parse_root(&parser, expression);
    if (result->root == NULL) {
        free(result);
        return NULL;
    }
    return result;
}

/* ------------------------------------------------------------------------ */
/* Resolving expansions                                                     */

typedef struct filter_evaluation {
    const json_t *document;
    const filter_user *user;
    bool out_of_memory;
} filter_evaluation;

static json_t *filter_resolve(const filter_operand *operand, filter_evaluation *evaluation);

static json_t *filter_resolve_string(const char *text, filter_evaluation *evaluation)
{
    if (text == NULL)
        return NULL;
    json_t *string = json_string(text);
    if (string == NULL)
        evaluation->out_of_memory = true;
    return string;
}

static json_t *filter_resolve_user_path(const json_t *root, const char *path)
{
    if (root == NULL)
        return NULL;
    return json_incref(*path == '\0' ? (json_t *)root : value_get_path(root, path));
}

/* Items that are missing are left out, as they hold no value. */
static json_t *filter_resolve_array(const filter_operand *operand, filter_evaluation *evaluation)
{
    json_t *array = json_array();
    if (array == NULL) {
        evaluation->out_of_memory = true;
        return NULL;
    }
    for (size_t i = 0; i < operand->item_count; i++) {
        json_t *item = filter_resolve(operand->items[i], evaluation);
        if (item != NULL && json_array_append_new(array, item) != 0)
            evaluation->out_of_memory = true;
    }
    return array;
}

/* Fields whose value is missing are left out, as they hold no value. */
static json_t *filter_resolve_document(const filter_operand *operand,
                                       filter_evaluation *evaluation)
{
    json_t *document = json_object();
    if (document == NULL) {
        evaluation->out_of_memory = true;
        return NULL;
    }
    for (size_t i = 0; i < operand->item_count; i++) {
        json_t *item = filter_resolve(operand->items[i], evaluation);
        if (item != NULL && json_object_set_new(document, operand->keys[i], item) != 0)
            evaluation->out_of_memory = true;
    }
    return document;
}

static json_t *filter_resolve_conversion(const filter_operand *operand,
                                         filter_evaluation *evaluation)
{
    json_t *argument = filter_resolve(operand->items[0], evaluation);
    json_t *converted = filter_convert(operand->kind, argument, &evaluation->out_of_memory);
    json_decref(argument);
    return converted;
}

/* The value of an operand for this evaluation: a new reference, or NULL
 * when it is missing (or memory ran out, which evaluation records). */
static json_t *filter_resolve(const filter_operand *operand, filter_evaluation *evaluation)
{
    const filter_user *user = evaluation->user;
    switch (operand->kind) {
    case FILTER_OPERAND_LITERAL:
        return json_incref(operand->literal);
    case FILTER_OPERAND_ARRAY:
        return filter_resolve_array(operand, evaluation);
    case FILTER_OPERAND_DOCUMENT:
        return filter_resolve_document(operand, evaluation);
    case FILTER_OPERAND_USER_ID:
        return filter_resolve_string(user != NULL ? user->id : NULL, evaluation);
    case FILTER_OPERAND_USER_TYPE:
        return filter_resolve_string(user != NULL ? user->type : NULL, evaluation);
    case FILTER_OPERAND_USER_DATA:
        return filter_resolve_user_path(user != NULL ? user->data : NULL, operand->path);
    case FILTER_OPERAND_USER_CUSTOM_DATA:
        return filter_resolve_user_path(user != NULL ? user->custom_data : NULL, operand->path);
    case FILTER_OPERAND_STRING_TO_OID:
    case FILTER_OPERAND_OID_TO_STRING:
        return filter_resolve_conversion(operand, evaluation);
    }
    return NULL;
}

/* The list of $in, $nin or $all as an array: a missing list is empty, and
 * a single value is a list of one. */
static json_t *filter_resolve_list(const filter_operand *operand, filter_evaluation *evaluation)
{
    json_t *value = filter_resolve(operand, evaluation);
    if (json_is_array(value))
        return value;
    json_t *list = json_array();
    if (list == NULL || (value != NULL && json_array_append_new(list, value) != 0)) {
        evaluation->out_of_memory = true;
        json_decref(list);
        return NULL;
    }
    return list;
}

/* ------------------------------------------------------------------------ */
/* Comparing                                                                */

/* One comparison against one value of the subject; a NULL candidate is a
 * missing field, a NULL operand a missing expansion. */
typedef struct filter_test {
    filter_comparison comparison;
    const json_t *operand;
} filter_test;

/* MongoDB equality: a missing field equals null, and an array equals a
 * value when it, or one of its elements, does. */
static bool filter_equals(const json_t *candidate, const json_t *operand)
{
    if (operand == NULL)
        return false;
    if (candidate == NULL)
        return json_is_null(operand);
    if (value_equal(candidate, operand))
        return true;
    if (!json_is_array(candidate))
        return false;
    size_t index;
    const json_t *element;
    json_array_foreach(candidate, index, element)
        if (value_equal(element, operand))
            return true;
    return false;
}

static bool filter_order_holds(filter_comparison comparison, const json_t *candidate,
                               const json_t *operand)
{
    int order;
    if (!value_compare(candidate, operand, &order))
        return false;
    switch (comparison) {
    case FILTER_GREATER:
        return order > 0;
    case FILTER_GREATER_OR_EQUAL:
        return order >= 0;
    case FILTER_LESS:
        return order < 0;
    case FILTER_LESS_OR_EQUAL:
        return order <= 0;
    default:
        return false;
    }
}

/* $gt, $gte, $lt, $lte: a missing field orders as null (so "$gte": null
 * matches it, as in MongoDB), and an array matches when an element does. */
static bool filter_orders(filter_comparison comparison, const json_t *candidate,
                          const json_t *operand)
{
    if (operand == NULL)
        return false;
    if (candidate == NULL)
        return filter_order_holds(comparison, json_null(), operand);
    if (filter_order_holds(comparison, candidate, operand))
        return true;
    if (!json_is_array(candidate))
        return false;
    size_t index;
    const json_t *element;
    json_array_foreach(candidate, index, element)
        if (filter_order_holds(comparison, element, operand))
            return true;
    return false;
}

static bool filter_in_list(const json_t *candidate, const json_t *list)
{
    size_t index;
    const json_t *item;
    json_array_foreach(list, index, item)
        if (filter_equals(candidate, item))
            return true;
    return false;
}

static bool filter_test_candidate(const filter_test *test, const json_t *candidate)
{
    switch (test->comparison) {
    case FILTER_EXISTS:
        return candidate != NULL;
    case FILTER_EQUAL:
        return filter_equals(candidate, test->operand);
    case FILTER_IN:
        return filter_in_list(candidate, test->operand);
    default:
        return filter_orders(test->comparison, candidate, test->operand);
    }
}

static bool filter_path_any(const json_t *value, const char *path, const filter_test *test);

/* MongoDB applies the rest of a path to each embedded document of an array
 * met on the way; an array holding none leaves the field missing. */
static bool filter_array_path_any(const json_t *array, const char *path, const filter_test *test)
{
    bool has_document = false;
    size_t index;
    const json_t *element;
    json_array_foreach(array, index, element) {
        if (value_type_of(element) != VALUE_DOCUMENT)
            continue;
        has_document = true;
        if (filter_path_any(element, path, test))
            return true;
    }
    return !has_document && filter_test_candidate(test, NULL);
}

/* Whether some value the dotted path reaches from value passes test; path
 * is NULL once every step is taken. */
static bool filter_path_any(const json_t *value, const char *path, const filter_test *test)
{
    if (path == NULL)
        return filter_test_candidate(test, value);
    if (value != NULL && value_type_of(value) == VALUE_DOCUMENT) {
        const char *dot = strchr(path, '.');
        size_t length = dot != NULL ? (size_t)(dot - path) : strlen(path);
        return filter_path_any(json_object_getn(value, path, length),
                               dot != NULL ? dot + 1 : NULL, test);
    }
    if (value != NULL && value_type_of(value) == VALUE_ARRAY)
        return filter_array_path_any(value, path, test);
    return filter_test_candidate(test, NULL);
}

static bool filter_subject_any(const filter_subject *subject, const filter_test *test,
                               filter_evaluation *evaluation)
{
    if (subject->path != NULL)
        return filter_path_any(evaluation->document, subject->path, test);
    json_t *value = filter_resolve(subject->expansion, evaluation);
    bool result = filter_test_candidate(test, value);
    json_decref(value);
    return result;
}

/* $all is an AND of equalities, one per listed value; an empty list matches
 * nothing, as in MongoDB. */
static bool filter_subject_has_all(const filter_subject *subject, const json_t *list,
                                   filter_evaluation *evaluation)
{
    if (json_array_size(list) == 0)
        return false;
    size_t index;
    const json_t *item;
    json_array_foreach(list, index, item) {
        filter_test test = {FILTER_EQUAL, item};
        if (!filter_subject_any(subject, &test, evaluation))
            return false;
    }
    return true;
}

static bool filter_evaluate_list_comparison(const filter_node *node,
                                            const filter_subject *subject,
                                            filter_evaluation *evaluation)
{
    json_t *list = filter_resolve_list(node->operand, evaluation);
    if (list == NULL)
        return false;
    bool result;
    if (node->comparison == FILTER_ALL)
        result = filter_subject_has_all(subject, list, evaluation);
    else
        result = filter_subject_any(subject, &(filter_test){FILTER_IN, list}, evaluation);
    json_decref(list);
    return result;
}

static bool filter_evaluate_comparison(const filter_node *node, const filter_subject *subject,
                                       filter_evaluation *evaluation)
{
    if (node->comparison == FILTER_IN || node->comparison == FILTER_ALL)
        return filter_evaluate_list_comparison(node, subject, evaluation);
    json_t *operand = node->operand != NULL ? filter_resolve(node->operand, evaluation) : NULL;
    filter_test test = {node->comparison, operand};
    bool result = filter_subject_any(subject, &test, evaluation);
    json_decref(operand);
    return result;
}

static bool filter_evaluate(const filter_node *node, const filter_subject *subject,
                            filter_evaluation *evaluation);

static bool filter_evaluate_any_child(const filter_node *node, const filter_subject *subject,
                                      filter_evaluation *evaluation)
{
    for (size_t i = 0; i < node->child_count; i++)
        if (filter_evaluate(node->children[i], subject, evaluation))
            return true;
    return false;
}

static bool filter_evaluate_every_child(const filter_node *node, const filter_subject *subject,
                                        filter_evaluation *evaluation)
{
    for (size_t i = 0; i < node->child_count; i++)
        if (!filter_evaluate(node->children[i], subject, evaluation))
            return false;
    return true;
}

/* subject is what the nearest FIELD node above names (NULL above any). */
static bool filter_evaluate(const filter_node *node, const filter_subject *subject,
                            filter_evaluation *evaluation)
{
    switch (node->kind) {
    case FILTER_NODE_CONSTANT:
        return node->constant;
    case FILTER_NODE_AND:
        return filter_evaluate_every_child(node, subject, evaluation);
    case FILTER_NODE_OR:
        return filter_evaluate_any_child(node, subject, evaluation);
    case FILTER_NODE_NOR:
        return !filter_evaluate_any_child(node, subject, evaluation);
    case FILTER_NODE_FIELD:
        return filter_evaluate(node->children[0], &node->subject, evaluation);
    case FILTER_NODE_COMPARE:
        return filter_evaluate_comparison(node, subject, evaluation);
    }
    return false;
}

bool filter_matches(const filter *filter, const json_t *document, const filter_user *user)
{
    filter_evaluation evaluation = {document, user, false};
    bool result = filter_evaluate(filter->root, NULL, &evaluation);
    return result && !evaluation.out_of_memory;
}

/* ------------------------------------------------------------------------ */
/* Fields read                                                              */

static bool filter_reads_field(const filter_node *node)
{
    return node->kind == FILTER_NODE_FIELD && node->subject.path != NULL;
}

/* Whether a node met before field, in visiting order from node, reads the
 * same path; *reached is set once field itself is met. */
static bool filter_path_read_before(const filter_node *node, const filter_node *field,
                                    bool *reached)
{
    if (node == field) {
        *reached = true;
        return false;
    }
    if (filter_reads_field(node) && strcmp(node->subject.path, field->subject.path) == 0)
        return true;
    for (size_t i = 0; i < node->child_count && !*reached; i++)
        if (filter_path_read_before(node->children[i], field, reached))
            return true;
    return false;
}

static int filter_visit_node(const filter_node *root, const filter_node *node,
                             int (*visit)(const char *path, void *context), void *context)
{
    bool reached = false;
    if (filter_reads_field(node) && !filter_path_read_before(root, node, &reached)) {
        int result = visit(node->subject.path, context);
        if (result != 0)
            return result;
    }
    for (size_t i = 0; i < node->child_count; i++) {
        int result = filter_visit_node(root, node->children[i], visit, context);
        if (result != 0)
            return result;
    }
    return 0;
}

int filter_visit_fields(const filter *filter, int (*visit)(const char *path, void *context),
                        void *context)
{
    return filter_visit_node(filter->root, filter->root, visit, context);
}

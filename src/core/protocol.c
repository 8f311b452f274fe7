/*
 * protocol.c — sync protocol frames to message structs and back (the
 * contract is in protocol.h, the protocol in docs/protocol.md).
 *
 * Every message type is a row of protocol_specs: its name, which peer
 * sends it, and its members.  A member names the field it fills and the
 * codec that reads, writes and frees that kind of field, so reading,
 * writing and freeing are each one loop over the table, and a new member
 * is one line.  Nested objects (a subscription, a compensating write) are
 * member tables too.
 */
#include "realmfs/protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol_text.h"
#include "realmfs/ejson.h"
#include "realmfs/value.h"

#define PROTOCOL_COUNT_OF(array) (sizeof(array) / sizeof(array)[0])

/* Room for where a member is: "query.subscriptions.<collection>[12].name". */
#define PROTOCOL_LOCATION_SIZE 160

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

typedef struct protocol_error_code_info {
    protocol_error_code code;
    const char *name;
    bool try_again;
    protocol_action action;
    double backoff_seconds;
} protocol_error_code_info;

/* The advice protocol_error_init gives; docs/protocol.md explains each. */
static const protocol_error_code_info protocol_error_codes[] = {
    {PROTOCOL_ERROR_MALFORMED_MESSAGE, "malformed_message", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_MESSAGE_TOO_LARGE, "message_too_large", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE, "unknown_message_type", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_UNEXPECTED_MESSAGE, "unexpected_message", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_UNSUPPORTED_PROTOCOL_VERSION, "unsupported_protocol_version", false,
     PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_AUTHENTICATION_FAILED, "authentication_failed", false, PROTOCOL_ACTION_NONE,
     0},
    {PROTOCOL_ERROR_GOING_AWAY, "going_away", true, PROTOCOL_ACTION_RECONNECT, 5},
    {PROTOCOL_ERROR_IDLE_TIMEOUT, "idle_timeout", true, PROTOCOL_ACTION_RECONNECT, 0},
    {PROTOCOL_ERROR_INTERNAL, "internal_error", true, PROTOCOL_ACTION_RECONNECT, 10},
    {PROTOCOL_ERROR_BAD_FILE_IDENTITY, "bad_file_identity", true, PROTOCOL_ACTION_CLIENT_RESET,
     0},
    {PROTOCOL_ERROR_CLIENT_RESET_REQUIRED, "client_reset_required", true,
     PROTOCOL_ACTION_CLIENT_RESET, 0},
    {PROTOCOL_ERROR_BAD_CHANGESET, "bad_changeset", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_BAD_QUERY, "bad_query", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_PERMISSION_DENIED, "permission_denied", false, PROTOCOL_ACTION_NONE, 0},
    {PROTOCOL_ERROR_COMPENSATING_WRITE, "compensating_write", true, PROTOCOL_ACTION_REVERT, 0},
    {PROTOCOL_ERROR_SESSION_ALREADY_BOUND, "session_already_bound", false, PROTOCOL_ACTION_NONE,
     0},
};

static const char *const protocol_action_names[] = {
    [PROTOCOL_ACTION_NONE] = "none",
    [PROTOCOL_ACTION_CLIENT_RESET] = "client_reset",
    [PROTOCOL_ACTION_RECONNECT] = "reconnect",
    [PROTOCOL_ACTION_REVERT] = "revert",
};

static const protocol_error_code_info *protocol_error_code_find(long long code)
{
    for (size_t i = 0; i < PROTOCOL_COUNT_OF(protocol_error_codes); i++) {
        if (protocol_error_codes[i].code == code)
            return &protocol_error_codes[i];
    }
    return NULL;
}

static bool protocol_code_is_session_level(protocol_error_code code)
{
    return code >= 200 && code < 300;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int protocol_fail(protocol_error *error, protocol_error_code code, const char *format, ...)
{
    error->code = code;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(error->message, sizeof error->message, format, arguments);
    va_end(arguments);
    return code;
}

static int protocol_out_of_memory(protocol_error *error)
{
    return protocol_fail(error, PROTOCOL_ERROR_INTERNAL, "out of memory");
}

/* Where a member is, for messages: one that does not fit is cut short,
 * which only shortens the message. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void protocol_locate(char location[PROTOCOL_LOCATION_SIZE], const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(location, PROTOCOL_LOCATION_SIZE, format, arguments);
    va_end(arguments);
}

/* ------------------------------------------------------------------------ */
/* Member tables                                                             */

/* How one kind of field travels.  read fills field from value (found at
 * location) and returns 0 or a protocol error code; what it stored is freed
 * by clear even when it fails.  write returns a new reference, or NULL when
 * out of memory or the field cannot be written.  clear is NULL for fields
 * that own nothing.  write_text appends the text json_dumps would write of
 * write's result, or returns false when write would fail for the field
 * itself (out of memory shows in text->failed); it is NULL for the kinds
 * of fields that no download holds (protocol_serialize_download).  absent
 * says whether the field holds nothing, for the codecs of optional
 * members, which are then left out of the frame. */
typedef struct protocol_codec {
    int (*read)(const json_t *value, void *field, const char *location, protocol_error *error);
    json_t *(*write)(const void *field);
    void (*clear)(void *field);
    bool (*write_text)(protocol_text *text, const void *field);
    bool (*absent)(const void *field);
} protocol_codec;

typedef struct protocol_member {
    const char *name;
    size_t offset; /* of the field in the struct the table describes */
    const protocol_codec *codec;
    bool optional; /* may be missing; left out when the codec finds it absent */
} protocol_member;

static void *protocol_field(void *base, const protocol_member *member)
{
    return (char *)base + member->offset;
}

static const void *protocol_const_field(const void *base, const protocol_member *member)
{
    return (const char *)base + member->offset;
}

static bool protocol_member_absent(const protocol_member *member, const void *field)
{
    return member->optional && member->codec->absent(field);
}

/* The absent of optional members that are a pointer: NULL. */
static bool protocol_pointer_absent(const void *field)
{
    return *(const void *const *)field == NULL;
}

static bool protocol_member_known(const protocol_member *members, size_t count,
                                  const char *name, size_t length)
{
    for (size_t i = 0; i < count; i++) {
        if (strlen(members[i].name) == length && memcmp(members[i].name, name, length) == 0)
            return true;
    }
    return false;
}

/* Unknown members are refused, not ignored: a typo would otherwise
 * silently drop what the sender meant. */
static int protocol_check_known_members(const json_t *object, const protocol_member *members,
                                        size_t count, const char *location,
                                        protocol_error *error)
{
    const char *name;
    size_t length;
    json_t *value;
    json_object_keylen_foreach((json_t *)object, name, length, value) {
        if (!protocol_member_known(members, count, name, length))
            return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                                 "%s.%.60s: unknown member", location, name);
    }
    return 0;
}

static int protocol_read_member(const json_t *object, const protocol_member *member, void *base,
                                const char *location, protocol_error *error)
{
    char member_location[PROTOCOL_LOCATION_SIZE];
    protocol_locate(member_location, "%s.%s", location, member->name);
    const json_t *value = json_object_get(object, member->name);
    if (!value)
        return member->optional ? 0
                                : protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                                                "%s: missing", member_location);
    return member->codec->read(value, protocol_field(base, member), member_location, error);
}

static int protocol_read_object(const json_t *object, const protocol_member *members,
                                size_t count, void *base, const char *location,
                                protocol_error *error)
{
    if (!json_is_object(object))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: must be an object",
                             location);
    int result = protocol_check_known_members(object, members, count, location, error);
    for (size_t i = 0; i < count && result == 0; i++)
        result = protocol_read_member(object, &members[i], base, location, error);
    return result;
}

/* Members in table order, which makes the text canonical.  *failed names
 * the member that could not be written (NULL: the object itself). */
static json_t *protocol_write_object(const protocol_member *members, size_t count,
                                     const void *base, const char **failed)
{
    json_t *object = json_object();
    *failed = NULL;
    for (size_t i = 0; object && i < count; i++) {
        const void *field = protocol_const_field(base, &members[i]);
        if (protocol_member_absent(&members[i], field))
            continue;
        if (json_object_set_new(object, members[i].name, members[i].codec->write(field)) != 0) {
            *failed = members[i].name;
            json_decref(object);
            object = NULL;
        }
    }
    return object;
}

/* As protocol_write_object, as text: false with *failed naming the
 * member that cannot be written. */
static bool protocol_write_object_text(protocol_text *text, const protocol_member *members,
                                       size_t count, const void *base, const char **failed)
{
    protocol_text_add(text, "{", 1);
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        const void *field = protocol_const_field(base, &members[i]);
        if (protocol_member_absent(&members[i], field))
            continue;
        protocol_text_add_member_name(text, members[i].name, first);
        first = false;
        if (members[i].codec->write_text == NULL ||
            !members[i].codec->write_text(text, field)) {
            *failed = members[i].name;
            return false;
        }
    }
    protocol_text_add(text, "}", 1);
    return true;
}

static void protocol_clear_object(const protocol_member *members, size_t count, void *base)
{
    for (size_t i = 0; i < count; i++) {
        if (members[i].codec->clear)
            members[i].codec->clear(protocol_field(base, &members[i]));
    }
}

/* Reads each element of an array member with read_element, which appends
 * it to container. */
typedef int (*protocol_element_reader)(const json_t *element, void *container,
                                       const char *location, protocol_error *error);

static int protocol_read_array(const json_t *value, const char *location,
                               protocol_element_reader read_element, void *container,
                               protocol_error *error)
{
    if (!json_is_array(value))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: must be an array",
                             location);
    int result = 0;
    for (size_t i = 0; i < json_array_size(value) && result == 0; i++) {
        char element_location[PROTOCOL_LOCATION_SIZE];
        protocol_locate(element_location, "%s[%zu]", location, i);
        result = read_element(json_array_get(value, i), container, element_location, error);
    }
    return result;
}

typedef json_t *(*protocol_element_writer)(const void *element);

static json_t *protocol_write_array(const void *elements, size_t count, size_t size,
                                    protocol_element_writer write_element)
{
    json_t *array = json_array();
    for (size_t i = 0; array && i < count; i++) {
        const void *element = (const char *)elements + i * size;
        if (json_array_append_new(array, write_element(element)) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

/* Room for one more element: items itself, or a larger copy (capacity
 * doubles, so appending one at a time stays linear); NULL when out of
 * memory, items then unchanged. */
static void *protocol_grow(void *items, size_t *capacity, size_t count, size_t size)
{
    if (count < *capacity)
        return items;
    size_t grown = *capacity > 0 ? *capacity * 2 : 4;
    if (grown > SIZE_MAX / size)
        return NULL;
    void *larger = realloc(items, grown * size);
    if (larger)
        *capacity = grown;
    return larger;
}

/* ------------------------------------------------------------------------ */
/* Scalar codecs                                                             */

/* JSON integers are signed 64-bit, so unsigned fields stop at INT64_MAX;
 * 1.0 is a real, not an integer, and refused like 1.5. */
static int protocol_read_integer(const json_t *value, uint64_t minimum, uint64_t *out,
                                 const char *location, protocol_error *error)
{
    if (!json_is_integer(value) || json_integer_value(value) < (json_int_t)minimum)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must be an integer from %" PRIu64 " to 2^63 - 1", location,
                             minimum);
    *out = (uint64_t)json_integer_value(value);
    return 0;
}

static int protocol_read_unsigned(const json_t *value, void *field, const char *location,
                                  protocol_error *error)
{
    return protocol_read_integer(value, 0, field, location, error);
}

static int protocol_read_positive(const json_t *value, void *field, const char *location,
                                  protocol_error *error)
{
    return protocol_read_integer(value, 1, field, location, error);
}

/* A value beyond INT64_MAX wraps to a negative integer here, which the
 * check that protocol_serialize makes then refuses with its location. */
static json_t *protocol_write_integer(const void *field)
{
    uint64_t value = *(const uint64_t *)field;
    return json_integer((json_int_t)value);
}

/* Unlike protocol_write_integer, refuses what JSON cannot hold: the text
 * is not read back. */
static bool protocol_write_integer_text(protocol_text *text, const void *field)
{
    uint64_t value = *(const uint64_t *)field;
    if (value > INT64_MAX)
        return false;
    protocol_text_add_integer(text, (int64_t)value);
    return true;
}

static const protocol_codec protocol_unsigned_codec = {
    protocol_read_unsigned, protocol_write_integer, NULL, protocol_write_integer_text, NULL};
static const protocol_codec protocol_positive_codec = {
    protocol_read_positive, protocol_write_integer, NULL, protocol_write_integer_text, NULL};

static int protocol_read_boolean(const json_t *value, void *field, const char *location,
                                 protocol_error *error)
{
    if (!json_is_boolean(value))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must be true or false", location);
    *(bool *)field = json_is_true(value);
    return 0;
}

static json_t *protocol_write_boolean(const void *field)
{
    return json_boolean(*(const bool *)field);
}

static bool protocol_write_boolean_text(protocol_text *text, const void *field)
{
    protocol_text_add_raw(text, *(const bool *)field ? "true" : "false");
    return true;
}

static const protocol_codec protocol_boolean_codec = {
    protocol_read_boolean, protocol_write_boolean, NULL, protocol_write_boolean_text, NULL};

/* Numbers that are hints accept integers too: JavaScript writes 1.0 as 1. */
static int protocol_read_number(const json_t *value, double maximum, double *out,
                                const char *location, protocol_error *error)
{
    if (!json_is_number(value) || json_number_value(value) < 0 ||
        json_number_value(value) > maximum) {
        if (isinf(maximum))
            return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                                 "%s: must be a number >= 0", location);
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must be a number from 0 to %g", location, maximum);
    }
    *out = json_number_value(value);
    return 0;
}

static int protocol_read_fraction(const json_t *value, void *field, const char *location,
                                  protocol_error *error)
{
    return protocol_read_number(value, 1.0, field, location, error);
}

static int protocol_read_seconds(const json_t *value, void *field, const char *location,
                                 protocol_error *error)
{
    return protocol_read_number(value, INFINITY, field, location, error);
}

static json_t *protocol_write_number(const void *field)
{
    return json_real(*(const double *)field);
}

/* The range protocol_read_fraction accepts, since the text is not read
 * back. */
static bool protocol_write_fraction_text(protocol_text *text, const void *field)
{
    double number = *(const double *)field;
    if (!(number >= 0.0 && number <= 1.0))
        return false;
    protocol_text_add_real(text, number);
    return true;
}

static const protocol_codec protocol_fraction_codec = {
    protocol_read_fraction, protocol_write_number, NULL, protocol_write_fraction_text, NULL};
static const protocol_codec protocol_seconds_codec = {
    protocol_read_seconds, protocol_write_number, NULL, NULL, NULL};

/* Whole-string equality: a JSON string may hold a NUL, which strcmp would
 * stop at. */
static bool protocol_string_is(const json_t *value, const char *name)
{
    return json_is_string(value) && strlen(name) == json_string_length(value) &&
           memcmp(name, json_string_value(value), json_string_length(value)) == 0;
}

/* Strings become C strings, where a NUL inside would silently cut them.
 * *out borrows from value. */
static int protocol_check_text(const json_t *value, bool may_be_empty, const char **out,
                               const char *location, protocol_error *error)
{
    if (!json_is_string(value))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: must be a string",
                             location);
    size_t length = json_string_length(value);
    if (memchr(json_string_value(value), '\0', length))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must not hold a NUL", location);
    if (length == 0 && !may_be_empty)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must not be empty", location);
    *out = json_string_value(value);
    return 0;
}

static int protocol_read_string(const json_t *value, bool may_be_empty, char **field,
                                const char *location, protocol_error *error)
{
    const char *text = NULL;
    int result = protocol_check_text(value, may_be_empty, &text, location, error);
    if (result == 0 && !(*field = strdup(text)))
        result = protocol_out_of_memory(error);
    return result;
}

static int protocol_read_text(const json_t *value, void *field, const char *location,
                              protocol_error *error)
{
    return protocol_read_string(value, true, field, location, error);
}

static int protocol_read_name(const json_t *value, void *field, const char *location,
                              protocol_error *error)
{
    return protocol_read_string(value, false, field, location, error);
}

static json_t *protocol_write_string(const void *field)
{
    return json_string(*(char *const *)field);
}

static bool protocol_write_string_text(protocol_text *text, const void *field)
{
    const char *string = *(char *const *)field;
    if (string == NULL)
        return false;
    protocol_text_add_string(text, string, strlen(string));
    return true;
}

static void protocol_clear_string(void *field)
{
    free(*(char **)field);
}

/* text may be empty; a name may not. */
static const protocol_codec protocol_text_codec = {
    protocol_read_text, protocol_write_string, protocol_clear_string, NULL, NULL};
static const protocol_codec protocol_name_codec = {
    protocol_read_name, protocol_write_string, protocol_clear_string, protocol_write_string_text,
    NULL};

static int protocol_read_error_code(const json_t *value, void *field, const char *location,
                                    protocol_error *error)
{
    if (!json_is_integer(value))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must be an integer", location);
    const protocol_error_code_info *info = protocol_error_code_find(json_integer_value(value));
    if (!info)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: %" JSON_INTEGER_FORMAT " is not an error code", location,
                             json_integer_value(value));
    *(protocol_error_code *)field = info->code;
    return 0;
}

static json_t *protocol_write_error_code(const void *field)
{
    return json_integer(*(const protocol_error_code *)field);
}

static const protocol_codec protocol_error_code_codec = {
    protocol_read_error_code, protocol_write_error_code, NULL, NULL, NULL};

static int protocol_read_action(const json_t *value, void *field, const char *location,
                                protocol_error *error)
{
    for (size_t i = 0; i < PROTOCOL_COUNT_OF(protocol_action_names); i++) {
        if (protocol_string_is(value, protocol_action_names[i])) {
            *(protocol_action *)field = (protocol_action)i;
            return 0;
        }
    }
    return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                         "%s: must be \"none\", \"client_reset\", \"reconnect\" or \"revert\"",
                         location);
}

static json_t *protocol_write_action(const void *field)
{
    protocol_action action = *(const protocol_action *)field;
    if ((unsigned)action >= PROTOCOL_COUNT_OF(protocol_action_names))
        return NULL;
    return json_string(protocol_action_names[action]);
}

static const protocol_codec protocol_action_codec = {
    protocol_read_action, protocol_write_action, NULL, NULL, NULL};

/* ------------------------------------------------------------------------ */
/* Extended JSON codecs                                                      */

/* ids and documents travel as Relaxed Extended JSON, as changesets do. */
static json_t *protocol_relaxed_json(const json_t *value)
{
    size_t length;
    char *text = ejson_format_line(value, &length);
    if (!text)
        return NULL;
    json_t *raw = json_loadb(text, length, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(text);
    return raw;
}

static int protocol_normalize(const json_t *value, json_t **out, const char *location,
                              protocol_error *error)
{
    ejson_error details;
    *out = ejson_normalize(value, &details);
    if (!*out)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: %s", location,
                             details.message);
    return 0;
}

static int protocol_read_id(const json_t *value, void *field, const char *location,
                            protocol_error *error)
{
    json_t **id = field;
    int result = protocol_normalize(value, id, location, error);
    if (result != 0)
        return result;
    value_type type = value_type_of(*id);
    if (type != VALUE_STRING && type != VALUE_INT && type != VALUE_OBJECT_ID)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must be a string, int or ObjectId, not %s", location,
                             value_type_name(type));
    return 0;
}

static json_t *protocol_write_id(const void *field)
{
    const json_t *id = *(json_t *const *)field;
    return id ? protocol_relaxed_json(id) : NULL;
}

static void protocol_clear_json(void *field)
{
    json_decref(*(json_t **)field);
}

/* The relaxed text of protocol_write_id, as changesets write their ids. */
static bool protocol_write_id_text(protocol_text *text, const void *field)
{
    const json_t *id = *(json_t *const *)field;
    if (id == NULL)
        return false;
    protocol_text_add_value(text, id);
    return true;
}

static const protocol_codec protocol_id_codec = {
    protocol_read_id, protocol_write_id, protocol_clear_json, protocol_write_id_text, NULL};

static bool protocol_nests_within(const char *text, size_t length, size_t limit);

/* Bounded like a document built from changesets, and measured as it will
 * be written: relaxed text can be a level deeper than what came in (2^60
 * becomes {"$numberLong": ...}), and must still fit in a frame. */
static int protocol_check_document_depth(const json_t *document, const char *location,
                                         protocol_error *error)
{
    size_t length;
    char *text = ejson_format_line(document, &length);
    if (!text)
        return protocol_out_of_memory(error);
    bool within = protocol_nests_within(text, length, CHANGESET_MAX_DEPTH + 1);
    free(text);
    if (!within)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: nests deeper than %d levels", location,
                             CHANGESET_MAX_DEPTH + 1);
    return 0;
}

/* A document, or JSON null (stored as NULL). */
static int protocol_read_document(const json_t *value, void *field, const char *location,
                                  protocol_error *error)
{
    json_t **document = field;
    if (json_is_null(value))
        return 0;
    int result = protocol_normalize(value, document, location, error);
    if (result == 0 && value_type_of(*document) != VALUE_DOCUMENT)
        result = protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                               "%s: must be a document or null", location);
    if (result == 0)
        result = protocol_check_document_depth(*document, location, error);
    return result;
}

static json_t *protocol_write_document(const void *field)
{
    const json_t *document = *(json_t *const *)field;
    return document ? protocol_relaxed_json(document) : json_null();
}

static const protocol_codec protocol_document_codec = {
    protocol_read_document, protocol_write_document, protocol_clear_json, NULL, NULL};

/* ------------------------------------------------------------------------ */
/* Changesets                                                                */

/* changeset_parse names places inside the changeset ("instructions[2]:
 * ...") and calls the changeset itself "changeset: "; here the changeset
 * is at location. */
static int protocol_fail_changeset(protocol_error *error, const char *location,
                                   const char *detail)
{
    static const char own_name[] = "changeset: ";
    static const char instructions[] = "instructions[";
    if (strncmp(detail, own_name, sizeof own_name - 1) == 0)
        detail += sizeof own_name - 1;
    const char *separator =
        strncmp(detail, instructions, sizeof instructions - 1) == 0 ? "." : ": ";
    return protocol_fail(error, PROTOCOL_ERROR_BAD_CHANGESET, "%s%s%s", location, separator,
                         detail);
}

static int protocol_read_changeset(const json_t *value, changeset *out, const char *location,
                                   protocol_error *error)
{
    char detail[sizeof error->message];
    int result = changeset_parse(value, out, detail, sizeof detail);
    if (result == -ENOMEM)
        return protocol_out_of_memory(error);
    if (result != 0)
        return protocol_fail_changeset(error, location, detail);
    return 0;
}

/* Version 0 means "nothing yet", so the versions of the changesets in a
 * message start at 1 and each follows the one before. */
static int protocol_check_follows(uint64_t version, uint64_t previous, const char *location,
                                  protocol_error *error)
{
    if (version > previous)
        return 0;
    if (previous == 0)
        return protocol_fail(error, PROTOCOL_ERROR_BAD_CHANGESET, "%s: must be at least 1",
                             location);
    return protocol_fail(error, PROTOCOL_ERROR_BAD_CHANGESET,
                         "%s: must be greater than the previous one (%" PRIu64 ")", location,
                         previous);
}

int protocol_upload_add(protocol_upload_body *upload, changeset *added)
{
    changeset *grown = protocol_grow(upload->changesets, &upload->changeset_capacity,
                                     upload->changeset_count, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    upload->changesets = grown;
    upload->changesets[upload->changeset_count++] = *added;
    *added = (changeset){0};
    return 0;
}

static int protocol_read_upload_changeset(const json_t *element, void *container,
                                          const char *location, protocol_error *error)
{
    protocol_upload_body *upload = container;
    uint64_t previous = upload->changeset_count > 0
                            ? upload->changesets[upload->changeset_count - 1].client_version
                            : 0;
    char version_location[PROTOCOL_LOCATION_SIZE];
    protocol_locate(version_location, "%s.client_version", location);
    changeset read;
    int result = protocol_read_changeset(element, &read, location, error);
    if (result != 0)
        return result;
    result = protocol_check_follows(read.client_version, previous, version_location, error);
    if (result == 0 && protocol_upload_add(upload, &read) != 0)
        result = protocol_out_of_memory(error);
    changeset_clear(&read);
    return result;
}

static int protocol_read_upload_changesets(const json_t *value, void *field,
                                           const char *location, protocol_error *error)
{
    return protocol_read_array(value, location, protocol_read_upload_changeset, field, error);
}

static json_t *protocol_write_upload_changeset(const void *element)
{
    return changeset_to_json(element);
}

static json_t *protocol_write_upload_changesets(const void *field)
{
    const protocol_upload_body *upload = field;
    return protocol_write_array(upload->changesets, upload->changeset_count,
                                sizeof *upload->changesets, protocol_write_upload_changeset);
}

static void protocol_clear_upload_changesets(void *field)
{
    protocol_upload_body *upload = field;
    for (size_t i = 0; i < upload->changeset_count; i++)
        changeset_clear(&upload->changesets[i]);
    free(upload->changesets);
}

static const protocol_codec protocol_upload_changesets_codec = {
    protocol_read_upload_changesets, protocol_write_upload_changesets,
    protocol_clear_upload_changesets, NULL, NULL};

int protocol_download_add(protocol_download_body *download, uint64_t server_version,
                          changeset *added)
{
    protocol_download_changeset *grown =
        protocol_grow(download->changesets, &download->changeset_capacity,
                      download->changeset_count, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    download->changesets = grown;
    download->changesets[download->changeset_count++] =
        (protocol_download_changeset){.server_version = server_version, .changeset = *added};
    *added = (changeset){0};
    return 0;
}

/* Whatever is wrong inside an element of "changesets" is a bad changeset,
 * whichever reader found it, as it is for uploads. */
static int protocol_as_bad_changeset(int result, protocol_error *error)
{
    if (result != 0 && result != PROTOCOL_ERROR_INTERNAL)
        error->code = PROTOCOL_ERROR_BAD_CHANGESET;
    return result == 0 ? 0 : (int)error->code;
}

/* A download changeset is a changeset's JSON form with "server_version"
 * added, so the rest goes to changeset_parse without it. */
static int protocol_read_download_changeset_parts(const json_t *element,
                                                  uint64_t *server_version, changeset *read,
                                                  const char *location, protocol_error *error)
{
    protocol_member server_version_member = {"server_version", 0, &protocol_positive_codec,
                                             false};
    if (!json_is_object(element))
        return protocol_fail(error, PROTOCOL_ERROR_BAD_CHANGESET, "%s: must be an object",
                             location);
    int result = protocol_read_member(element, &server_version_member, server_version,
                                      location, error);
    if (result != 0)
        return result;
    json_t *rest = json_copy((json_t *)element);
    if (!rest || json_object_del(rest, "server_version") != 0)
        result = protocol_out_of_memory(error);
    else
        result = protocol_read_changeset(rest, read, location, error);
    json_decref(rest);
    return result;
}

static int protocol_read_download_changeset(const json_t *element, void *container,
                                            const char *location, protocol_error *error)
{
    protocol_download_body *download = container;
    uint64_t previous =
        download->changeset_count > 0
            ? download->changesets[download->changeset_count - 1].server_version
            : 0;
    char version_location[PROTOCOL_LOCATION_SIZE];
    protocol_locate(version_location, "%s.server_version", location);
    uint64_t server_version = 0;
    changeset read = {0};
    int result = protocol_as_bad_changeset(
        protocol_read_download_changeset_parts(element, &server_version, &read, location, error),
        error);
    if (result == 0)
        result = protocol_check_follows(server_version, previous, version_location, error);
    if (result == 0 && protocol_download_add(download, server_version, &read) != 0)
        result = protocol_out_of_memory(error);
    changeset_clear(&read);
    return result;
}

static int protocol_read_download_changesets(const json_t *value, void *field,
                                             const char *location, protocol_error *error)
{
    return protocol_read_array(value, location, protocol_read_download_changeset, field, error);
}

static json_t *protocol_write_download_changeset(const void *element)
{
    const protocol_download_changeset *download_changeset = element;
    json_t *object = json_object();
    json_t *changeset = changeset_to_json(&download_changeset->changeset);
    bool built = object && changeset &&
                 json_object_set_new(object, "server_version",
                                     json_integer((json_int_t)download_changeset->server_version)) ==
                     0 &&
                 json_object_update(object, changeset) == 0;
    json_decref(changeset);
    if (!built) {
        json_decref(object);
        return NULL;
    }
    return object;
}

static json_t *protocol_write_download_changesets(const void *field)
{
    const protocol_download_body *download = field;
    return protocol_write_array(download->changesets, download->changeset_count,
                                sizeof *download->changesets,
                                protocol_write_download_changeset);
}

static void protocol_clear_download_changesets(void *field)
{
    protocol_download_body *download = field;
    for (size_t i = 0; i < download->changeset_count; i++)
        changeset_clear(&download->changesets[i].changeset);
    free(download->changesets);
}

/* The names of changeset_to_json's "op" (changeset.h). */
static const char *const protocol_operation_names[] = {
    [CHANGESET_CREATE] = "create",
    [CHANGESET_DELETE] = "delete",
    [CHANGESET_SET] = "set",
    [CHANGESET_UNSET] = "unset",
};

/* An instruction's members are written in three parts, so that the
 * download writer can repeat the middle one (the object) from its text. */
static void protocol_write_instruction_operation_text(protocol_text *text,
                                                      changeset_operation operation)
{
    protocol_text_add_raw(text, "\"op\":\"");
    protocol_text_add_raw(text, protocol_operation_names[operation]);
    protocol_text_add(text, "\"", 1);
}

static void protocol_write_instruction_object_text(protocol_text *text, const char *collection,
                                                   const json_t *id)
{
    protocol_text_add_raw(text, ",\"collection\":");
    protocol_text_add_string(text, collection, strlen(collection));
    protocol_text_add_raw(text, ",\"id\":");
    protocol_text_add_value(text, id);
}

static void protocol_write_instruction_operands_text(protocol_text *text, const char *path,
                                                     const json_t *value)
{
    if (path) {
        protocol_text_add_raw(text, ",\"path\":");
        protocol_text_add_string(text, path, strlen(path));
    }
    if (value) {
        protocol_text_add_raw(text, ",\"value\":");
        protocol_text_add_value(text, value);
    }
}

static void protocol_write_instruction_text(protocol_text *text, changeset_operation operation,
                                            const char *collection, const json_t *id,
                                            const char *path, const json_t *value)
{
    protocol_write_instruction_operation_text(text, operation);
    protocol_write_instruction_object_text(text, collection, id);
    protocol_write_instruction_operands_text(text, path, value);
}

/* What protocol_write_download_changeset builds up to its instructions:
 * server_version, then changeset_to_json's members in its order, and the
 * '[' that opens "instructions". */
static bool protocol_write_changeset_head_text(protocol_text *text, uint64_t server_version,
                                               uint64_t origin, uint64_t client_version,
                                               int64_t timestamp)
{
    if (server_version > INT64_MAX || origin > INT64_MAX || client_version > INT64_MAX ||
        timestamp < 0)
        return false;
    protocol_text_add_member_name(text, "server_version", true);
    protocol_text_add_integer(text, (int64_t)server_version);
    protocol_text_add_member_name(text, "origin", false);
    protocol_text_add_integer(text, (int64_t)origin);
    protocol_text_add_member_name(text, "client_version", false);
    protocol_text_add_integer(text, (int64_t)client_version);
    protocol_text_add_member_name(text, "timestamp", false);
    protocol_text_add_integer(text, timestamp);
    protocol_text_add_member_name(text, "instructions", false);
    protocol_text_add(text, "[", 1);
    return true;
}

static bool protocol_write_download_changeset_text(protocol_text *text,
                                                   const protocol_download_changeset *element)
{
    const changeset *written = &element->changeset;
    if (!protocol_write_changeset_head_text(text, element->server_version, written->origin,
                                            written->client_version, written->timestamp))
        return false;
    for (size_t i = 0; i < written->count; i++) {
        const changeset_instruction *instruction = &written->instructions[i];
        protocol_text_add(text, i > 0 ? ",{" : "{", i > 0 ? 2 : 1);
        protocol_write_instruction_text(text, instruction->operation, instruction->collection,
                                        instruction->id, instruction->path, instruction->value);
        protocol_text_add(text, "}", 1);
    }
    protocol_text_add(text, "]", 1);
    return true;
}

static bool protocol_write_download_changesets_text(protocol_text *text, const void *field)
{
    const protocol_download_body *download = field;
    protocol_text_add(text, "[", 1);
    for (size_t i = 0; i < download->changeset_count; i++) {
        protocol_text_add(text, i > 0 ? ",{" : "{", i > 0 ? 2 : 1);
        if (!protocol_write_download_changeset_text(text, &download->changesets[i]))
            return false;
        protocol_text_add(text, "}", 1);
    }
    protocol_text_add(text, "]", 1);
    return true;
}

static const protocol_codec protocol_download_changesets_codec = {
    protocol_read_download_changesets, protocol_write_download_changesets,
    protocol_clear_download_changesets, protocol_write_download_changesets_text, NULL};

/* ------------------------------------------------------------------------ */
/* Access entries of a download                                              */

static const protocol_member protocol_object_access_members[] = {
    {"collection", offsetof(protocol_object_access, collection), &protocol_name_codec, false},
    {"id", offsetof(protocol_object_access, id), &protocol_id_codec, false},
    {"writable", offsetof(protocol_object_access, writable), &protocol_boolean_codec, false},
};

static void protocol_object_access_clear(protocol_object_access *entry)
{
    protocol_clear_object(protocol_object_access_members,
                          PROTOCOL_COUNT_OF(protocol_object_access_members), entry);
}

static int protocol_download_push_access(protocol_download_body *download,
                                         const protocol_object_access *entry)
{
    protocol_object_access *grown = protocol_grow(download->access, &download->access_capacity,
                                                  download->access_count, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    download->access = grown;
    download->access[download->access_count++] = *entry;
    return 0;
}

int protocol_download_add_access(protocol_download_body *download, const char *collection,
                                 json_t *id, bool writable)
{
    protocol_object_access entry = {strdup(collection), json_incref(id), writable};
    if (!entry.collection || protocol_download_push_access(download, &entry) != 0) {
        protocol_object_access_clear(&entry);
        return -ENOMEM;
    }
    return 0;
}

static int protocol_read_object_access(const json_t *element, void *container,
                                       const char *location, protocol_error *error)
{
    protocol_object_access entry = {0};
    int result = protocol_read_object(element, protocol_object_access_members,
                                      PROTOCOL_COUNT_OF(protocol_object_access_members), &entry,
                                      location, error);
    if (result == 0 && protocol_download_push_access(container, &entry) != 0)
        result = protocol_out_of_memory(error);
    if (result != 0)
        protocol_object_access_clear(&entry);
    return result;
}

static int protocol_read_access(const json_t *value, void *field, const char *location,
                                protocol_error *error)
{
    return protocol_read_array(value, location, protocol_read_object_access, field, error);
}

static json_t *protocol_write_object_access(const void *element)
{
    const char *failed;
    return protocol_write_object(protocol_object_access_members,
                                 PROTOCOL_COUNT_OF(protocol_object_access_members), element,
                                 &failed);
}

static json_t *protocol_write_access(const void *field)
{
    const protocol_download_body *download = field;
    return protocol_write_array(download->access, download->access_count,
                                sizeof *download->access, protocol_write_object_access);
}

static bool protocol_write_access_text(protocol_text *text, const void *field)
{
    const protocol_download_body *download = field;
    const char *failed;
    protocol_text_add(text, "[", 1);
    for (size_t i = 0; i < download->access_count; i++) {
        if (i > 0)
            protocol_text_add(text, ",", 1);
        if (!protocol_write_object_text(text, protocol_object_access_members,
                                        PROTOCOL_COUNT_OF(protocol_object_access_members),
                                        &download->access[i], &failed))
            return false;
    }
    protocol_text_add(text, "]", 1);
    return true;
}

static void protocol_clear_access(void *field)
{
    protocol_download_body *download = field;
    for (size_t i = 0; i < download->access_count; i++)
        protocol_object_access_clear(&download->access[i]);
    free(download->access);
}

static bool protocol_access_absent(const void *field)
{
    const protocol_download_body *download = field;
    return download->access_count == 0;
}

static const protocol_codec protocol_access_codec = {
    protocol_read_access, protocol_write_access, protocol_clear_access, protocol_write_access_text,
    protocol_access_absent};

/* ------------------------------------------------------------------------ */
/* Subscriptions                                                             */

/* The collection is the key the subscription is listed under. */
static const protocol_member protocol_subscription_members[] = {
    {"name", offsetof(protocol_subscription, name), &protocol_name_codec, false},
    {"query", offsetof(protocol_subscription, query), &protocol_name_codec, false},
};

static void protocol_subscription_clear(protocol_subscription *subscription)
{
    free(subscription->collection);
    protocol_clear_object(protocol_subscription_members,
                          PROTOCOL_COUNT_OF(protocol_subscription_members), subscription);
}

static int protocol_query_push(protocol_query_body *query, protocol_subscription *subscription)
{
    protocol_subscription *grown =
        protocol_grow(query->subscriptions, &query->subscription_capacity,
                      query->subscription_count, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    query->subscriptions = grown;
    query->subscriptions[query->subscription_count++] = *subscription;
    return 0;
}

int protocol_query_add(protocol_query_body *query, const char *collection, const char *name,
                       const char *query_text)
{
    protocol_subscription subscription = {strdup(collection), strdup(name), strdup(query_text)};
    if (!subscription.collection || !subscription.name || !subscription.query ||
        protocol_query_push(query, &subscription) != 0) {
        protocol_subscription_clear(&subscription);
        return -ENOMEM;
    }
    return 0;
}

typedef struct protocol_collection_reader {
    protocol_query_body *query;
    const char *collection;
} protocol_collection_reader;

static int protocol_read_subscription(const json_t *element, void *container,
                                      const char *location, protocol_error *error)
{
    const protocol_collection_reader *reader = container;
    protocol_subscription subscription = {0};
    int result = protocol_read_object(element, protocol_subscription_members,
                                      PROTOCOL_COUNT_OF(protocol_subscription_members),
                                      &subscription, location, error);
    if (result == 0 && !(subscription.collection = strdup(reader->collection)))
        result = protocol_out_of_memory(error);
    if (result == 0 && protocol_query_push(reader->query, &subscription) != 0)
        result = protocol_out_of_memory(error);
    if (result != 0)
        protocol_subscription_clear(&subscription);
    return result;
}

static int protocol_compare_subscription_names(const void *a, const void *b)
{
    const protocol_subscription *left = *(const protocol_subscription *const *)a;
    const protocol_subscription *right = *(const protocol_subscription *const *)b;
    int order = strcmp(left->name, right->name);
    if (order != 0)
        return order;
    return (left > right) - (left < right);
}

/* Sorting makes duplicates neighbours, so that a frame with very many
 * subscriptions costs n log n to check, not n squared. */
static int protocol_check_unique_names(const protocol_subscription *subscriptions,
                                       size_t count, const char *location,
                                       protocol_error *error)
{
    if (count < 2)
        return 0;
    const protocol_subscription **sorted = malloc(count * sizeof *sorted);
    if (!sorted)
        return protocol_out_of_memory(error);
    for (size_t i = 0; i < count; i++)
        sorted[i] = &subscriptions[i];
    qsort(sorted, count, sizeof *sorted, protocol_compare_subscription_names);
    int result = 0;
    for (size_t i = 1; i < count && result == 0; i++) {
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            result = protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                                   "%s[%td].name: \"%.60s\" is already the name of %s[%td]",
                                   location, sorted[i] - subscriptions, sorted[i]->name,
                                   location, sorted[i - 1] - subscriptions);
    }
    free(sorted);
    return result;
}

/* Reads each member of value, an object whose member names are
 * collections (not empty, without NUL), with read_member; the member is
 * at location.<collection>. */
typedef int (*protocol_collection_member_reader)(const char *collection, const json_t *member,
                                                 void *context, const char *location,
                                                 protocol_error *error);

static int protocol_read_by_collection(const json_t *value, const char *location,
                                       protocol_collection_member_reader read_member,
                                       void *context, protocol_error *error)
{
    if (!json_is_object(value))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: must be an object",
                             location);
    const char *collection;
    size_t length;
    json_t *member;
    json_object_keylen_foreach((json_t *)value, collection, length, member) {
        if (length == 0 || strlen(collection) != length)
            return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                                 "%s: a collection name must not be empty or hold a NUL",
                                 location);
        char member_location[PROTOCOL_LOCATION_SIZE];
        protocol_locate(member_location, "%s.%.60s", location, collection);
        int result = read_member(collection, member, context, member_location, error);
        if (result != 0)
            return result;
    }
    return 0;
}

static int protocol_read_collection(const char *collection, const json_t *list, void *context,
                                    const char *collection_location, protocol_error *error)
{
    protocol_query_body *query = context;
    if (!json_is_array(list) || json_array_size(list) == 0)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "%s: must be a non-empty array", collection_location);
    size_t first = query->subscription_count;
    protocol_collection_reader reader = {query, collection};
    int result = protocol_read_array(list, collection_location, protocol_read_subscription,
                                     &reader, error);
    if (result == 0)
        result = protocol_check_unique_names(query->subscriptions + first,
                                             query->subscription_count - first,
                                             collection_location, error);
    return result;
}

static int protocol_read_subscriptions(const json_t *value, void *field, const char *location,
                                       protocol_error *error)
{
    return protocol_read_by_collection(value, location, protocol_read_collection, field, error);
}

/* Subscriptions of one collection are listed together, collections in the
 * order of their first subscription. */
static int protocol_write_subscription(json_t *object, const protocol_subscription *subscription)
{
    if (!subscription->collection)
        return -1;
    json_t *list = json_object_get(object, subscription->collection);
    if (!list) {
        list = json_array();
        if (json_object_set_new(object, subscription->collection, list) != 0)
            return -1;
    }
    const char *failed;
    return json_array_append_new(
        list, protocol_write_object(protocol_subscription_members,
                                    PROTOCOL_COUNT_OF(protocol_subscription_members),
                                    subscription, &failed));
}

static json_t *protocol_write_subscriptions(const void *field)
{
    const protocol_query_body *query = field;
    json_t *object = json_object();
    for (size_t i = 0; object && i < query->subscription_count; i++) {
        if (protocol_write_subscription(object, &query->subscriptions[i]) != 0) {
            json_decref(object);
            object = NULL;
        }
    }
    return object;
}

static void protocol_clear_subscriptions(void *field)
{
    protocol_query_body *query = field;
    for (size_t i = 0; i < query->subscription_count; i++)
        protocol_subscription_clear(&query->subscriptions[i]);
    free(query->subscriptions);
}

static const protocol_codec protocol_subscriptions_codec = {
    protocol_read_subscriptions, protocol_write_subscriptions, protocol_clear_subscriptions, NULL,
    NULL};

/* ------------------------------------------------------------------------ */
/* Compensating writes                                                       */

static const protocol_member protocol_compensating_write_members[] = {
    {"collection", offsetof(protocol_compensating_write, collection), &protocol_name_codec,
     false},
    {"id", offsetof(protocol_compensating_write, id), &protocol_id_codec, false},
    {"reason", offsetof(protocol_compensating_write, reason), &protocol_text_codec, false},
    {"server_document", offsetof(protocol_compensating_write, server_document),
     &protocol_document_codec, false},
    {"client_version", offsetof(protocol_compensating_write, client_version),
     &protocol_positive_codec, false},
};

/* The write is attached first, so that the message's clear frees what a
 * failed read left in it. */
static int protocol_read_compensating_write(const json_t *value, void *field,
                                            const char *location, protocol_error *error)
{
    protocol_compensating_write **write = field;
    *write = calloc(1, sizeof **write);
    if (!*write)
        return protocol_out_of_memory(error);
    return protocol_read_object(value, protocol_compensating_write_members,
                                PROTOCOL_COUNT_OF(protocol_compensating_write_members), *write,
                                location, error);
}

static json_t *protocol_write_compensating_write(const void *field)
{
    const char *failed;
    return protocol_write_object(protocol_compensating_write_members,
                                 PROTOCOL_COUNT_OF(protocol_compensating_write_members),
                                 *(protocol_compensating_write *const *)field, &failed);
}

static void protocol_clear_compensating_write(void *field)
{
    protocol_compensating_write *write = *(protocol_compensating_write **)field;
    if (!write)
        return;
    protocol_clear_object(protocol_compensating_write_members,
                          PROTOCOL_COUNT_OF(protocol_compensating_write_members), write);
    free(write);
}

static const protocol_codec protocol_compensating_write_codec = {
    protocol_read_compensating_write, protocol_write_compensating_write,
    protocol_clear_compensating_write, NULL, protocol_pointer_absent};

/* ------------------------------------------------------------------------ */
/* Schemas                                                                   */

/* What a schema says is for the client's schema module to judge, so only
 * its shape is checked here. */
static int protocol_check_schema(const char *collection, const json_t *schema, void *context,
                                 const char *location, protocol_error *error)
{
    (void)collection;
    (void)context;
    if (!json_is_object(schema))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: must be an object",
                             location);
    return 0;
}

static int protocol_read_schemas(const json_t *value, void *field, const char *location,
                                 protocol_error *error)
{
    int result = protocol_read_by_collection(value, location, protocol_check_schema, NULL, error);
    if (result != 0)
        return result;
    *(json_t **)field = json_deep_copy(value);
    if (!*(json_t **)field)
        return protocol_out_of_memory(error);
    return 0;
}

static json_t *protocol_write_schemas(const void *field)
{
    return json_incref(*(json_t *const *)field);
}

static const protocol_codec protocol_schemas_codec = {
    protocol_read_schemas, protocol_write_schemas, protocol_clear_json, NULL, NULL};

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static int protocol_read_type(const json_t *value, void *field, const char *location,
                              protocol_error *error);
static json_t *protocol_write_type(const void *field);
static bool protocol_write_type_text(protocol_text *text, const void *field);

/* "type" is read first, to choose the table, then again with the other
 * members: being a member like the others puts it first in the text. */
static const protocol_codec protocol_type_codec = {
    protocol_read_type, protocol_write_type, NULL, protocol_write_type_text, NULL};

#define PROTOCOL_FIELD(member) offsetof(protocol_message, member)
#define PROTOCOL_TYPE_MEMBER {"type", PROTOCOL_FIELD(type), &protocol_type_codec, false}
#define PROTOCOL_SESSION_MEMBER {"session", PROTOCOL_FIELD(session), &protocol_positive_codec, false}

static const protocol_member protocol_bind_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"file_identity", PROTOCOL_FIELD(body.bind.file_identity), &protocol_unsigned_codec, false},
    {"last_server_version", PROTOCOL_FIELD(body.bind.last_server_version),
     &protocol_unsigned_codec, false},
    {"last_integrated_client_version", PROTOCOL_FIELD(body.bind.last_integrated_client_version),
     &protocol_unsigned_codec, false},
};

static const protocol_member protocol_upload_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"last_integrated_server_version", PROTOCOL_FIELD(body.upload.last_integrated_server_version),
     &protocol_unsigned_codec, false},
    {"changesets", PROTOCOL_FIELD(body.upload), &protocol_upload_changesets_codec, false},
};

static const protocol_member protocol_query_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"query_version", PROTOCOL_FIELD(body.query.query_version), &protocol_positive_codec, false},
    {"subscriptions", PROTOCOL_FIELD(body.query), &protocol_subscriptions_codec, false},
};

/* unbind and unbound */
static const protocol_member protocol_session_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
};

/* ping and pong */
static const protocol_member protocol_ping_members[] = {
    PROTOCOL_TYPE_MEMBER,
    {"timestamp", PROTOCOL_FIELD(body.ping.timestamp), &protocol_unsigned_codec, false},
};

static const protocol_member protocol_mark_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"request", PROTOCOL_FIELD(body.mark.request), &protocol_unsigned_codec, false},
};

static const protocol_member protocol_ident_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"file_identity", PROTOCOL_FIELD(body.ident.file_identity), &protocol_positive_codec, false},
};

static const protocol_member protocol_download_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"server_version", PROTOCOL_FIELD(body.download.server_version), &protocol_unsigned_codec,
     false},
    {"last_integrated_client_version",
     PROTOCOL_FIELD(body.download.last_integrated_client_version), &protocol_unsigned_codec,
     false},
    {"query_version", PROTOCOL_FIELD(body.download.query_version), &protocol_unsigned_codec,
     false},
    {"last_in_batch", PROTOCOL_FIELD(body.download.last_in_batch), &protocol_boolean_codec,
     false},
    {"progress_estimate", PROTOCOL_FIELD(body.download.progress_estimate),
     &protocol_fraction_codec, false},
    {"changesets", PROTOCOL_FIELD(body.download), &protocol_download_changesets_codec, false},
    {"access", PROTOCOL_FIELD(body.download), &protocol_access_codec, true},
};

static const protocol_member protocol_query_error_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"query_version", PROTOCOL_FIELD(body.query_error.query_version), &protocol_positive_codec,
     false},
    {"code", PROTOCOL_FIELD(body.query_error.code), &protocol_error_code_codec, false},
    {"message", PROTOCOL_FIELD(body.query_error.message), &protocol_text_codec, false},
};

/* The session of an error is 0 for connection-level codes. */
static const protocol_member protocol_error_members[] = {
    PROTOCOL_TYPE_MEMBER,
    {"session", PROTOCOL_FIELD(session), &protocol_unsigned_codec, false},
    {"code", PROTOCOL_FIELD(body.error.code), &protocol_error_code_codec, false},
    {"message", PROTOCOL_FIELD(body.error.message), &protocol_text_codec, false},
    {"try_again", PROTOCOL_FIELD(body.error.try_again), &protocol_boolean_codec, false},
    {"backoff_seconds", PROTOCOL_FIELD(body.error.backoff_seconds), &protocol_seconds_codec,
     false},
    {"action", PROTOCOL_FIELD(body.error.action), &protocol_action_codec, false},
    {"compensating_write", PROTOCOL_FIELD(body.error.compensating_write),
     &protocol_compensating_write_codec, true},
};

static const protocol_member protocol_schema_members[] = {
    PROTOCOL_TYPE_MEMBER,
    PROTOCOL_SESSION_MEMBER,
    {"development_mode", PROTOCOL_FIELD(body.schema.development_mode), &protocol_boolean_codec,
     false},
    {"collections", PROTOCOL_FIELD(body.schema.collections), &protocol_schemas_codec, false},
};

static const protocol_member protocol_login_members[] = {
    PROTOCOL_TYPE_MEMBER,
    {"user_id", PROTOCOL_FIELD(body.login.user_id), &protocol_name_codec, false},
    {"token", PROTOCOL_FIELD(body.login.token), &protocol_name_codec, false},
    {"expires", PROTOCOL_FIELD(body.login.expires), &protocol_unsigned_codec, false},
};

/* A new file has downloaded nothing and had nothing acknowledged. */
static int protocol_check_bind(const protocol_message *message, protocol_error *error)
{
    const protocol_bind_body *bind = &message->body.bind;
    if (bind->file_identity == 0 && bind->last_server_version != 0)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "bind.last_server_version: must be 0 when file_identity is 0");
    if (bind->file_identity == 0 && bind->last_integrated_client_version != 0)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "bind.last_integrated_client_version: must be 0 when "
                             "file_identity is 0");
    return 0;
}

/* The changesets follow one another, so only the last can pass the
 * message's own version. */
static int protocol_check_download(const protocol_message *message, protocol_error *error)
{
    const protocol_download_body *download = &message->body.download;
    if (download->changeset_count == 0)
        return 0;
    size_t last = download->changeset_count - 1;
    if (download->changesets[last].server_version > download->server_version)
        return protocol_fail(error, PROTOCOL_ERROR_BAD_CHANGESET,
                             "download.changesets[%zu].server_version: %" PRIu64
                             " is greater than the server_version of the message (%" PRIu64
                             ")",
                             last, download->changesets[last].server_version,
                             download->server_version);
    return 0;
}

static bool protocol_is_lowercase_hex(const char *text, size_t length)
{
    return strlen(text) == length && strspn(text, "0123456789abcdef") == length;
}

/* The forms of auth.h, so that a client can send the token back as it
 * came. */
static int protocol_check_login(const protocol_message *message, protocol_error *error)
{
    const protocol_login_body *login = &message->body.login;
    if (!protocol_is_lowercase_hex(login->user_id, 24))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "login.user_id: must be 24 lowercase hex digits");
    if (!protocol_is_lowercase_hex(login->token, 64))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "login.token: must be 64 lowercase hex digits");
    return 0;
}

static int protocol_check_query_error(const protocol_message *message, protocol_error *error)
{
    if (!protocol_code_is_session_level(message->body.query_error.code))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "query_error.code: %d is not a session-level code (200-299)",
                             message->body.query_error.code);
    return 0;
}

static int protocol_check_error(const protocol_message *message, protocol_error *error)
{
    const protocol_error_body *body = &message->body.error;
    bool session_level = protocol_code_is_session_level(body->code);
    if (session_level && message->session == 0)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "error.session: must be at least 1 with the session-level code %d",
                             body->code);
    if (!session_level && message->session != 0)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "error.session: must be 0 with the connection-level code %d",
                             body->code);
    if (body->compensating_write && body->code != PROTOCOL_ERROR_COMPENSATING_WRITE)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "error.compensating_write: only allowed with code %d",
                             PROTOCOL_ERROR_COMPENSATING_WRITE);
    return 0;
}

typedef struct protocol_message_spec {
    const char *name;
    unsigned senders; /* protocol_peer bits */
    const protocol_member *members;
    size_t member_count;
    /* Rules between members, once each is read; NULL when none. */
    int (*check)(const protocol_message *message, protocol_error *error);
} protocol_message_spec;

#define PROTOCOL_MEMBERS(array) array, PROTOCOL_COUNT_OF(array)

static const protocol_message_spec protocol_specs[] = {
    [PROTOCOL_MESSAGE_BIND] = {"bind", PROTOCOL_CLIENT, PROTOCOL_MEMBERS(protocol_bind_members),
                               protocol_check_bind},
    [PROTOCOL_MESSAGE_UPLOAD] = {"upload", PROTOCOL_CLIENT,
                                 PROTOCOL_MEMBERS(protocol_upload_members), NULL},
    [PROTOCOL_MESSAGE_QUERY] = {"query", PROTOCOL_CLIENT, PROTOCOL_MEMBERS(protocol_query_members),
                                NULL},
    [PROTOCOL_MESSAGE_UNBIND] = {"unbind", PROTOCOL_CLIENT,
                                 PROTOCOL_MEMBERS(protocol_session_members), NULL},
    [PROTOCOL_MESSAGE_PING] = {"ping", PROTOCOL_CLIENT, PROTOCOL_MEMBERS(protocol_ping_members),
                               NULL},
    [PROTOCOL_MESSAGE_MARK] = {"mark", PROTOCOL_CLIENT | PROTOCOL_SERVER,
                               PROTOCOL_MEMBERS(protocol_mark_members), NULL},
    [PROTOCOL_MESSAGE_IDENT] = {"ident", PROTOCOL_SERVER, PROTOCOL_MEMBERS(protocol_ident_members),
                                NULL},
    [PROTOCOL_MESSAGE_DOWNLOAD] = {"download", PROTOCOL_SERVER,
                                   PROTOCOL_MEMBERS(protocol_download_members),
                                   protocol_check_download},
    [PROTOCOL_MESSAGE_QUERY_ERROR] = {"query_error", PROTOCOL_SERVER,
                                      PROTOCOL_MEMBERS(protocol_query_error_members),
                                      protocol_check_query_error},
    [PROTOCOL_MESSAGE_ERROR] = {"error", PROTOCOL_SERVER, PROTOCOL_MEMBERS(protocol_error_members),
                                protocol_check_error},
    [PROTOCOL_MESSAGE_UNBOUND] = {"unbound", PROTOCOL_SERVER,
                                  PROTOCOL_MEMBERS(protocol_session_members), NULL},
    [PROTOCOL_MESSAGE_PONG] = {"pong", PROTOCOL_SERVER, PROTOCOL_MEMBERS(protocol_ping_members),
                               NULL},
    [PROTOCOL_MESSAGE_SCHEMA] = {"schema", PROTOCOL_SERVER,
                                 PROTOCOL_MEMBERS(protocol_schema_members), NULL},
    [PROTOCOL_MESSAGE_LOGIN] = {"login", PROTOCOL_SERVER, PROTOCOL_MEMBERS(protocol_login_members),
                                protocol_check_login},
};

static const protocol_message_spec *protocol_spec_of(protocol_message_type type)
{
    if ((unsigned)type >= PROTOCOL_COUNT_OF(protocol_specs))
        return NULL;
    return &protocol_specs[type];
}

static int protocol_read_type(const json_t *value, void *field, const char *location,
                              protocol_error *error)
{
    if (!json_is_string(value))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "%s: must be a string",
                             location);
    for (size_t i = 0; i < PROTOCOL_COUNT_OF(protocol_specs); i++) {
        if (protocol_string_is(value, protocol_specs[i].name)) {
            *(protocol_message_type *)field = (protocol_message_type)i;
            return 0;
        }
    }
    return protocol_fail(error, PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE,
                         "%s: unknown message type \"%.40s\"", location,
                         json_string_value(value));
}

static json_t *protocol_write_type(const void *field)
{
    const char *name = protocol_message_type_name(*(const protocol_message_type *)field);
    return name ? json_string(name) : NULL;
}

static bool protocol_write_type_text(protocol_text *text, const void *field)
{
    const char *name = protocol_message_type_name(*(const protocol_message_type *)field);
    if (name == NULL)
        return false;
    protocol_text_add_string(text, name, strlen(name));
    return true;
}

static int protocol_decode(const json_t *json, protocol_message *out, protocol_error *error)
{
    if (!json_is_object(json))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "message: must be a JSON object");
    const json_t *type = json_object_get(json, "type");
    if (!type)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "type: missing");
    int result = protocol_read_type(type, &out->type, "type", error);
    if (result != 0)
        return result;
    const protocol_message_spec *spec = protocol_spec_of(out->type);
    result = protocol_read_object(json, spec->members, spec->member_count, out, spec->name, error);
    if (result == 0 && spec->check)
        result = spec->check(out, error);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */

/* Counts brackets outside strings, so that a hostile frame is refused
 * before any recursive parser descends into it.  Brackets that do not
 * balance are left for the JSON parser to refuse. */
static bool protocol_nests_within(const char *text, size_t length, size_t limit)
{
    size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > limit)
                return false;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return true;
}

static int protocol_load(const char *text, size_t length, json_t **json, protocol_error *error)
{
    if (length == 0)
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "message: empty frame");
    if (length > PROTOCOL_MAX_MESSAGE_BYTES)
        return protocol_fail(error, PROTOCOL_ERROR_MESSAGE_TOO_LARGE,
                             "message: %zu bytes, more than the %d allowed", length,
                             PROTOCOL_MAX_MESSAGE_BYTES);
    if (!protocol_nests_within(text, length, PROTOCOL_MAX_DEPTH))
        return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                             "message: nests deeper than %d levels", PROTOCOL_MAX_DEPTH);
    json_error_t details;
    *json = json_loadb(text, length, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &details);
    if (*json)
        return 0;
    if (json_error_code(&details) == json_error_out_of_memory)
        return protocol_out_of_memory(error);
    return protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                         "message: invalid JSON (line %d, column %d): %s", details.line,
                         details.column, details.text);
}

int protocol_parse(const char *text, size_t length, protocol_message *out,
                   protocol_error *error)
{
    *out = (protocol_message){0};
    *error = (protocol_error){0};
    json_t *json = NULL;
    int result = protocol_load(text, length, &json, error);
    if (result == 0)
        result = protocol_decode(json, out, error);
    json_decref(json);
    if (result != 0) {
        error->session = protocol_code_is_session_level(error->code) ? out->session : 0;
        protocol_message_clear(out);
    }
    return result;
}

static json_t *protocol_encode(const protocol_message *message, protocol_error *error)
{
    const protocol_message_spec *spec = protocol_spec_of(message->type);
    if (!spec) {
        protocol_fail(error, PROTOCOL_ERROR_MALFORMED_MESSAGE, "type: %d is not a message type",
                      (int)message->type);
        return NULL;
    }
    const char *failed;
    json_t *json = protocol_write_object(spec->members, spec->member_count, message, &failed);
    if (!json && failed)
        protocol_fail(error, PROTOCOL_ERROR_INTERNAL,
                      "%s.%s: cannot be written (out of memory, text that is not UTF-8, or a "
                      "value out of range)",
                      spec->name, failed);
    else if (!json)
        protocol_out_of_memory(error);
    return json;
}

/* Reading the frame back is what makes "never sent" true: every rule is
 * written once, in the reader. */
static int protocol_check_frame(const char *text, size_t length, protocol_error *error)
{
    protocol_message read;
    int result = protocol_parse(text, length, &read, error);
    protocol_message_clear(&read);
    return result;
}

char *protocol_serialize(const protocol_message *message, size_t *length,
                         protocol_error *error)
{
    *error = (protocol_error){0};
    json_t *json = protocol_encode(message, error);
    if (!json)
        return NULL;
    char *text = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (!text) {
        protocol_out_of_memory(error);
        return NULL;
    }
    size_t text_length = strlen(text);
    if (protocol_check_frame(text, text_length, error) != 0) {
        free(text);
        return NULL;
    }
    *length = text_length;
    return text;
}

/* The end of writing a download's text: what went wrong, if anything, as
 * a protocol error; else the frame, passed to the caller. */
static char *protocol_finish_download_text(protocol_text *text, bool written,
                                           const char *failed, uint64_t session,
                                           size_t *length, protocol_error *error)
{
    if (!written && !text->failed) {
        free(text->data);
        protocol_fail(error, PROTOCOL_ERROR_INTERNAL,
                      "download.%s: cannot be written (a value out of range)", failed);
        return NULL;
    }
    if (text->failed) {
        free(text->data);
        protocol_out_of_memory(error);
        return NULL;
    }
    if (text->length > PROTOCOL_MAX_MESSAGE_BYTES) {
        free(text->data);
        *error = (protocol_error){.code = PROTOCOL_ERROR_MESSAGE_TOO_LARGE, .session = session};
        snprintf(error->message, sizeof error->message,
                 "download: the frame is %zu bytes, over the limit of %d", text->length,
                 PROTOCOL_MAX_MESSAGE_BYTES);
        return NULL;
    }
    *length = text->length;
    return text->data;
}

char *protocol_serialize_download(const protocol_message *message, size_t *length,
                                  protocol_error *error)
{
    if (message->type != PROTOCOL_MESSAGE_DOWNLOAD)
        return protocol_serialize(message, length, error);
    *error = (protocol_error){0};
    const protocol_message_spec *spec = protocol_spec_of(message->type);
    if (spec->check && spec->check(message, error) != 0)
        return NULL;
    protocol_text text = {0};
    const char *failed = NULL;
    bool written =
        protocol_write_object_text(&text, spec->members, spec->member_count, message, &failed);
    return protocol_finish_download_text(&text, written, failed, message->session, length,
                                         error);
}

/* ------------------------------------------------------------------------ */
/* Downloads written as they are built                                       */

struct protocol_download_writer {
    protocol_text instructions; /* each "{...}", with "," between them */
    size_t instruction_count;
    /* The object of the last instruction and where the text naming it
     * (,"collection":...,"id":...) is in instructions: the instructions
     * of one object repeat it.  The id is held, so that its address
     * cannot come to name another value meanwhile. */
    json_t *object_id;
    char *object_collection;
    size_t object_text_at;
    size_t object_text_length;
};

static void protocol_download_writer_forget_object(protocol_download_writer *writer)
{
    json_decref(writer->object_id);
    free(writer->object_collection);
    writer->object_id = NULL;
    writer->object_collection = NULL;
}

/* ,"collection":...,"id":... for the instruction being written. */
static void protocol_download_writer_add_object(protocol_download_writer *writer,
                                                const char *collection, const json_t *id)
{
    protocol_text *text = &writer->instructions;
    if (writer->object_id == id && strcmp(writer->object_collection, collection) == 0) {
        if (protocol_text_reserve(text, writer->object_text_length)) {
            memcpy(text->data + text->length, text->data + writer->object_text_at,
                   writer->object_text_length);
            text->length += writer->object_text_length;
            text->data[text->length] = '\0';
        }
        return;
    }
    protocol_download_writer_forget_object(writer);
    size_t at = text->length;
    protocol_write_instruction_object_text(text, collection, id);
    writer->object_collection = strdup(collection);
    if (!writer->object_collection)
        return; /* no cache: the next instruction writes its object again */
    writer->object_id = json_incref((json_t *)id);
    writer->object_text_at = at;
    writer->object_text_length = text->length - at;
}

/* What the "changesets" member of a written download reads: the message
 * comes first, so the other members' offsets hold. */
typedef struct protocol_written_download {
    protocol_message message;
    const protocol_download_writer *writer;
    uint64_t changeset_server_version;
    int64_t timestamp;
} protocol_written_download;

int protocol_download_writer_new(protocol_download_writer **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

void protocol_download_writer_free(protocol_download_writer *writer)
{
    if (!writer)
        return;
    protocol_download_writer_forget_object(writer);
    free(writer->instructions.data);
    free(writer);
}

size_t protocol_download_writer_instruction_count(const protocol_download_writer *writer)
{
    return writer->instruction_count;
}

int protocol_download_writer_add(void *context, changeset_operation operation,
                                 const char *collection, const json_t *id, const char *path,
                                 const json_t *value, char *message, size_t message_size)
{
    protocol_download_writer *writer = context;
    if (writer->instruction_count == CHANGESET_MAX_INSTRUCTIONS) {
        snprintf(message, message_size, "more than %u instructions",
                 (unsigned)CHANGESET_MAX_INSTRUCTIONS);
        return -E2BIG;
    }
    protocol_text *text = &writer->instructions;
    protocol_text_add(text, writer->instruction_count > 0 ? ",{" : "{",
                      writer->instruction_count > 0 ? 2 : 1);
    protocol_write_instruction_operation_text(text, operation);
    protocol_download_writer_add_object(writer, collection, id);
    protocol_write_instruction_operands_text(text, path, value);
    protocol_text_add(text, "}", 1);
    if (text->failed) {
        snprintf(message, message_size, "out of memory");
        return -ENOMEM;
    }
    writer->instruction_count++;
    return 0;
}

static bool protocol_write_written_changesets_text(protocol_text *text, const void *field)
{
    const protocol_written_download *download = field;
    const protocol_download_writer *writer = download->writer;
    protocol_text_add(text, "[", 1);
    if (writer->instruction_count > 0) {
        protocol_text_add(text, "{", 1);
        if (!protocol_write_changeset_head_text(text, download->changeset_server_version, 0, 0,
                                                download->timestamp))
            return false;
        protocol_text_add(text, writer->instructions.data, writer->instructions.length);
        protocol_text_add(text, "]}", 2);
    }
    protocol_text_add(text, "]", 1);
    return true;
}

static const protocol_codec protocol_written_changesets_codec = {
    NULL, NULL, NULL, protocol_write_written_changesets_text, NULL};

char *protocol_download_writer_finish(protocol_download_writer *writer,
                                      const protocol_message *message,
                                      uint64_t changeset_server_version, int64_t timestamp,
                                      size_t *length, protocol_error *error)
{
    *error = (protocol_error){0};
    const protocol_download_body *body = &message->body.download;
    protocol_written_download download = {
        .message = *message,
        .writer = writer,
        .changeset_server_version = changeset_server_version,
        .timestamp = timestamp,
    };
    char *frame = NULL;
    if (message->type != PROTOCOL_MESSAGE_DOWNLOAD || body->changeset_count > 0)
        protocol_fail(error, PROTOCOL_ERROR_INTERNAL,
                      "download: a written download holds no changesets of its own");
    else if (writer->instruction_count > 0 &&
             (changeset_server_version == 0 || changeset_server_version > body->server_version))
        protocol_fail(error, PROTOCOL_ERROR_BAD_CHANGESET,
                      "download.changesets[0].server_version: %" PRIu64
                      " is 0 or greater than the server_version of the message (%" PRIu64 ")",
                      changeset_server_version, body->server_version);
    else {
        protocol_member members[PROTOCOL_COUNT_OF(protocol_download_members)];
        for (size_t i = 0; i < PROTOCOL_COUNT_OF(members); i++) {
            members[i] = protocol_download_members[i];
            if (strcmp(members[i].name, "changesets") == 0)
                members[i] = (protocol_member){"changesets", 0,
                                               &protocol_written_changesets_codec, false};
        }
        protocol_text text = {0};
        protocol_text_reserve(&text, writer->instructions.length + 1024);
        const char *failed = NULL;
        bool written = protocol_write_object_text(&text, members, PROTOCOL_COUNT_OF(members),
                                                  &download, &failed);
        frame = protocol_finish_download_text(&text, written, failed, message->session, length,
                                              error);
    }
    writer->instructions.length = 0;
    writer->instruction_count = 0;
    protocol_download_writer_forget_object(writer);
    return frame;
}

/* ------------------------------------------------------------------------ */
/* Messages as values                                                        */

void protocol_message_clear(protocol_message *message)
{
    const protocol_message_spec *spec = protocol_spec_of(message->type);
    if (spec)
        protocol_clear_object(spec->members, spec->member_count, message);
    *message = (protocol_message){0};
}

void protocol_message_init(protocol_message *message, protocol_message_type type,
                           uint64_t session)
{
    *message = (protocol_message){.type = type, .session = session};
}

int protocol_error_init(protocol_message *message, uint64_t session, protocol_error_code code,
                        const char *text)
{
    const protocol_error_code_info *info = protocol_error_code_find(code);
    if (!info)
        return -EINVAL;
    char *copy = strdup(text);
    if (!copy)
        return -ENOMEM;
    protocol_message_init(message, PROTOCOL_MESSAGE_ERROR, session);
    message->body.error = (protocol_error_body){
        .code = code,
        .message = copy,
        .try_again = info->try_again,
        .backoff_seconds = info->backoff_seconds,
        .action = info->action,
    };
    return 0;
}

const char *protocol_error_code_name(int code)
{
    const protocol_error_code_info *info = protocol_error_code_find(code);
    return info ? info->name : NULL;
}

const char *protocol_message_type_name(protocol_message_type type)
{
    const protocol_message_spec *spec = protocol_spec_of(type);
    return spec ? spec->name : NULL;
}

bool protocol_sent_by(protocol_message_type type, protocol_peer peer)
{
    const protocol_message_spec *spec = protocol_spec_of(type);
    return spec && (spec->senders & (unsigned)peer) != 0;
}

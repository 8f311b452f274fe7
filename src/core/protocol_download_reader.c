/*
 * protocol_download_reader.c — downloads read straight from their text
 * (protocol_download_reader.h).
 *
 * The reader walks a download once, building each instruction's id and
 * value as the normalized values ejson_normalize would make of them and
 * each changeset with changeset_append, which checks every rule of
 * changeset.h as changeset_parse does.  It accepts only the one spelling
 * realmfs-server writes, byte for byte, so it has no whitespace, no member
 * order and no duplicate keys to handle.  Everything it does not read
 * itself, and everything protocol_parse would refuse, makes it give up
 * (false all the way up); protocol_parse then reads the frame, so what
 * comes out is always what protocol_parse gives.
 *
 * What it must therefore check itself is what jansson checks of the text
 * it accepts: strings (UTF-8, no control characters, escapes), numbers
 * (64-bit integers, finite reals) and literals.
 */
#include "realmfs/protocol_download_reader.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/value.h"

/* Deeper arrays are left to protocol_parse, which checks the limits of
 * changeset.h on them. */
enum { READER_MAX_ARRAY_DEPTH = 8 };

/* The longest collection name and path read here (both are copied to be
 * NUL-terminated); longer ones are left to protocol_parse. */
enum { READER_NAME_MAX = 1024 };

typedef struct frame_reader {
    const char *text;
    size_t at;
    size_t end;
    /* The id of the last instruction read and its text: a replacement
     * names one object in several instructions, which then share it. */
    json_t *last_id;
    size_t last_id_at;
    size_t last_id_length;
} frame_reader;

/* ------------------------------------------------------------------------ */
/* Text                                                                      */

/* Takes the literal bytes expected (a NUL-terminated piece of the frame's
 * fixed spelling). */
static bool take(frame_reader *reader, const char *expected)
{
    size_t length = strlen(expected);
    if (reader->end - reader->at < length || memcmp(reader->text + reader->at, expected, length) != 0)
        return false;
    reader->at += length;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A JSON number's text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?;
 * *integer when it has neither fraction nor exponent. */
static bool scan_number(frame_reader *reader, size_t *start, bool *integer)
{
    const char *text = reader->text;
    size_t i = *start = reader->at;
    if (i < reader->end && text[i] == '-')
        i++;
    if (i >= reader->end || !is_digit(text[i]))
        return false;
    if (text[i] == '0')
        i++;
    else
        while (i < reader->end && is_digit(text[i]))
            i++;
    *integer = true;
    if (i < reader->end && text[i] == '.') {
        *integer = false;
        if (++i >= reader->end || !is_digit(text[i]))
            return false;
        while (i < reader->end && is_digit(text[i]))
            i++;
    }
    if (i < reader->end && (text[i] == 'e' || text[i] == 'E')) {
        *integer = false;
        if (++i < reader->end && (text[i] == '+' || text[i] == '-'))
            i++;
        if (i >= reader->end || !is_digit(text[i]))
            return false;
        while (i < reader->end && is_digit(text[i]))
            i++;
    }
    reader->at = i;
    return true;
}

/* The number's token as a C string; long ones are left to
 * protocol_parse. */
static bool copy_number(const frame_reader *reader, size_t start, char buffer[64])
{
    size_t length = reader->at - start;
    if (length >= 64)
        return false;
    memcpy(buffer, reader->text + start, length);
    buffer[length] = '\0';
    return true;
}

/* A JSON integer that fits in 64 bits, as jansson reads it. */
static bool read_integer(frame_reader *reader, int64_t *value)
{
    size_t start;
    bool integer;
    char buffer[64];
    if (!scan_number(reader, &start, &integer) || !integer || !copy_number(reader, start, buffer))
        return false;
    errno = 0;
    char *stop;
    long long number = strtoll(buffer, &stop, 10);
    if (errno != 0 || *stop != '\0')
        return false;
    *value = number;
    return true;
}

/* A version, identity or timestamp: an integer from minimum to 2^63 - 1. */
static bool read_unsigned(frame_reader *reader, uint64_t minimum, uint64_t *value)
{
    int64_t number;
    if (!read_integer(reader, &number) || number < 0 || (uint64_t)number < minimum)
        return false;
    *value = (uint64_t)number;
    return true;
}

/* Any JSON number as a double: what json_number_value gives. */
static bool read_number(frame_reader *reader, double *value, bool *integer, int64_t *as_integer)
{
    size_t start;
    char buffer[64];
    if (!scan_number(reader, &start, integer) || !copy_number(reader, start, buffer))
        return false;
    if (*integer) {
        reader->at = start;
        if (!read_integer(reader, as_integer))
            return false;
        *value = (double)*as_integer;
        return true;
    }
    errno = 0;
    *value = strtod(buffer, NULL);
    return isfinite(*value); /* jansson refuses an overflow */
}

static bool read_boolean(frame_reader *reader, bool *value)
{
    if (take(reader, "true"))
        *value = true;
    else if (take(reader, "false"))
        *value = false;
    else
        return false;
    return true;
}

/* A digit of an ObjectId as the server writes it: lower case only. */
static int lower_hex_digit(char c)
{
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= '0' && c <= '9' ? c - '0' : -1;
}

/* Decodes text[from, end), the inside of a JSON string, into decoded
 * (*length bytes, which may hold NUL), checking it as jansson does:
 * UTF-8, no control characters, known escapes. */
static bool decode_string(const char *text, size_t from, size_t end, char *decoded,
                          size_t *length)
{
    size_t written = 0;
    for (size_t i = from; i < end;) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            size_t sequence = value_utf8_sequence_length((const unsigned char *)text + i, end - i);
            if (sequence == 0)
                return false;
            memcpy(decoded + written, text + i, sequence);
            written += sequence;
            i += sequence;
        } else if (c != '\\') {
            decoded[written++] = (char)c;
            i++;
        } else {
            long character;
            size_t escape = value_decode_json_escape(text + i, end - i, &character);
            if (escape == 0)
                return false;
            written += value_encode_utf8((uint32_t)character, decoded + written);
            i += escape;
        }
    }
    decoded[written] = '\0';
    *length = written;
    return true;
}

/* A JSON string (after its opening quote), decoded into a malloc'd buffer
 * of *length bytes (which may hold NUL). */
static bool read_string(frame_reader *reader, char **out, size_t *length)
{
    const char *text = reader->text;
    size_t closing = reader->at;
    while (closing < reader->end && text[closing] != '"')
        closing += text[closing] == '\\' ? 2 : 1;
    if (closing >= reader->end)
        return false;
    /* decoding never makes a string longer than its escaped form */
    char *decoded = malloc(closing - reader->at + 1);
    if (decoded == NULL || !decode_string(text, reader->at, closing, decoded, length)) {
        free(decoded);
        return false;
    }
    reader->at = closing + 1;
    *out = decoded;
    return true;
}

/* A string member that becomes a C string (collection, path, op): in
 * buffer, which holds READER_NAME_MAX bytes and the NUL. */
static bool read_name(frame_reader *reader, char buffer[READER_NAME_MAX + 1])
{
    char *decoded;
    size_t length;
    if (!take(reader, "\"") || !read_string(reader, &decoded, &length))
        return false;
    bool fits = length <= READER_NAME_MAX && memchr(decoded, '\0', length) == NULL;
    if (fits)
        memcpy(buffer, decoded, length + 1);
    free(decoded);
    return fits;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

static bool read_value(frame_reader *reader, int depth, json_t **out);

/* {"$oid": "<24 hex digits>"}, after its "{\"$oid\":\"". */
static bool read_object_id(frame_reader *reader, json_t **out)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    if (reader->end - reader->at < 2 * VALUE_OBJECT_ID_SIZE)
        return false;
    const char *hex = reader->text + reader->at;
    for (size_t i = 0; i < VALUE_OBJECT_ID_SIZE; i++) {
        int high = lower_hex_digit(hex[2 * i]), low = lower_hex_digit(hex[2 * i + 1]);
        if (high < 0 || low < 0)
            return false;
        bytes[i] = (uint8_t)(high * 16 + low);
    }
    reader->at += 2 * VALUE_OBJECT_ID_SIZE;
    if (!take(reader, "\"}"))
        return false;
    *out = value_new_object_id(bytes);
    return *out != NULL;
}

/* {"$date": "<ISO-8601>"}, after its "{\"$date\":\"". */
static bool read_iso_date(frame_reader *reader, json_t **out)
{
    char *text;
    size_t length;
    int64_t milliseconds;
    if (!read_string(reader, &text, &length))
        return false;
    bool valid = memchr(text, '\0', length) == NULL &&
                 ejson_parse_iso_date(text, &milliseconds) == 0;
    free(text);
    if (!valid || !take(reader, "}"))
        return false;
    *out = value_new_date(milliseconds);
    return *out != NULL;
}

static bool read_array(frame_reader *reader, int depth, json_t **out)
{
    if (depth >= READER_MAX_ARRAY_DEPTH)
        return false;
    json_t *array = json_array();
    bool read = array != NULL;
    if (read && !take(reader, "]")) {
        do {
            json_t *element;
            read = read_value(reader, depth + 1, &element) &&
                   json_array_append_new(array, element) == 0;
        } while (read && take(reader, ","));
        read = read && take(reader, "]");
    }
    if (!read) {
        json_decref(array);
        return false;
    }
    *out = array;
    return true;
}

/* An id or value of an instruction, normalized (value.h). */
static bool read_value(frame_reader *reader, int depth, json_t **out)
{
    *out = NULL;
    if (take(reader, "\"")) {
        char *text;
        size_t length;
        if (!read_string(reader, &text, &length))
            return false;
        *out = json_stringn_nocheck(text, length);
        free(text);
    } else if (take(reader, "{\"$oid\":\"")) {
        return read_object_id(reader, out);
    } else if (take(reader, "{\"$date\":\"")) {
        return read_iso_date(reader, out);
    } else if (take(reader, "{}")) {
        *out = json_object();
    } else if (take(reader, "[")) {
        return read_array(reader, depth, out);
    } else if (take(reader, "true")) {
        *out = json_true();
    } else if (take(reader, "false")) {
        *out = json_false();
    } else if (take(reader, "null")) {
        *out = json_null();
    } else {
        double number;
        bool integer;
        int64_t as_integer;
        if (!read_number(reader, &number, &integer, &as_integer))
            return false;
        *out = integer ? json_integer(as_integer) : json_real(number);
    }
    return *out != NULL;
}

/* ------------------------------------------------------------------------ */
/* Changesets                                                                */

static bool operation_named(const char *name, changeset_operation *operation)
{
    static const char *const names[] = {
        [CHANGESET_CREATE] = "create",
        [CHANGESET_DELETE] = "delete",
        [CHANGESET_SET] = "set",
        [CHANGESET_UNSET] = "unset",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            *operation = (changeset_operation)i;
            return true;
        }
    }
    return false;
}

/* An instruction's id: a new reference to the last one read when its
 * text is the same (what follows an id, ',' or '}', ends a number too). */
static bool read_id(frame_reader *reader, json_t **id)
{
    size_t length = reader->last_id_length;
    if (reader->last_id && reader->end - reader->at > length &&
        memcmp(reader->text + reader->at, reader->text + reader->last_id_at, length) == 0 &&
        (reader->text[reader->at + length] == ',' || reader->text[reader->at + length] == '}')) {
        reader->at += length;
        *id = json_incref(reader->last_id);
        return true;
    }
    size_t start = reader->at;
    if (!read_value(reader, 0, id))
        return false;
    json_decref(reader->last_id);
    reader->last_id = json_incref(*id);
    reader->last_id_at = start;
    reader->last_id_length = reader->at - start;
    return true;
}

/* One instruction object; changeset_append_taking checks it. */
static bool read_instruction(frame_reader *reader, changeset *read)
{
    char operation_name[READER_NAME_MAX + 1], collection[READER_NAME_MAX + 1],
        path[READER_NAME_MAX + 1];
    changeset_operation operation;
    json_t *id = NULL, *value = NULL;
    bool has_path = false;
    bool ok = take(reader, "{\"op\":") && read_name(reader, operation_name) &&
              operation_named(operation_name, &operation) && take(reader, ",\"collection\":") &&
              read_name(reader, collection) && take(reader, ",\"id\":") &&
              read_id(reader, &id);
    if (ok && take(reader, ",\"path\":")) {
        has_path = true;
        ok = read_name(reader, path);
    }
    if (ok && take(reader, ",\"value\":"))
        ok = read_value(reader, 0, &value);
    if (!(ok && take(reader, "}"))) {
        json_decref(id);
        json_decref(value);
        return false;
    }
    return changeset_append_taking(read, operation, collection, id, has_path ? path : NULL,
                                   value, NULL, 0) == 0;
}

static bool read_instructions(frame_reader *reader, changeset *read)
{
    if (!take(reader, "["))
        return false;
    if (take(reader, "]"))
        return true;
    do {
        if (!read_instruction(reader, read))
            return false;
    } while (take(reader, ","));
    return take(reader, "]");
}

/* One element of "changesets", its server version after previous. */
static bool read_download_changeset(frame_reader *reader, protocol_download_body *download)
{
    uint64_t server_version = 0, origin = 0, client_version = 0, timestamp = 0;
    uint64_t previous = download->changeset_count > 0
                            ? download->changesets[download->changeset_count - 1].server_version
                            : 0;
    changeset read = { 0 };
    bool ok = take(reader, "{\"server_version\":") && read_unsigned(reader, 1, &server_version) &&
              server_version > previous && take(reader, ",\"origin\":") &&
              read_unsigned(reader, 0, &origin) && take(reader, ",\"client_version\":") &&
              read_unsigned(reader, 0, &client_version) && take(reader, ",\"timestamp\":") &&
              read_unsigned(reader, 0, &timestamp) && take(reader, ",\"instructions\":") &&
              read_instructions(reader, &read) && take(reader, "}");
    read.origin = origin;
    read.client_version = client_version;
    read.timestamp = (int64_t)timestamp;
    ok = ok && protocol_download_add(download, server_version, &read) == 0;
    changeset_clear(&read);
    return ok;
}

/* One access entry: {"collection": name, "id": id, "writable": bool}. */
static bool read_access_entry(frame_reader *reader, protocol_download_body *download)
{
    char collection[READER_NAME_MAX + 1];
    json_t *id = NULL;
    bool writable = false;
    bool ok = take(reader, "{\"collection\":") && read_name(reader, collection) &&
              collection[0] != '\0' && take(reader, ",\"id\":") && read_value(reader, 0, &id);
    if (ok) {
        value_type type = value_type_of(id);
        ok = type == VALUE_STRING || type == VALUE_INT || type == VALUE_OBJECT_ID;
    }
    ok = ok && take(reader, ",\"writable\":") && read_boolean(reader, &writable) &&
         take(reader, "}") &&
         protocol_download_add_access(download, collection, id, writable) == 0;
    json_decref(id);
    return ok;
}

/* The optional "access" member, when it has entries (an empty one is left
 * to protocol_parse). */
static bool read_access(frame_reader *reader, protocol_download_body *download)
{
    if (!take(reader, ",\"access\":["))
        return true;
    bool ok;
    do
        ok = read_access_entry(reader, download);
    while (ok && take(reader, ","));
    return ok && take(reader, "]");
}

static bool read_download(frame_reader *reader, protocol_message *message)
{
    protocol_download_body *download = &message->body.download;
    message->type = PROTOCOL_MESSAGE_DOWNLOAD;
    double progress = 0;
    bool integer;
    int64_t as_integer;
    bool ok = take(reader, "{\"type\":\"download\",\"session\":") &&
              read_unsigned(reader, 1, &message->session) &&
              take(reader, ",\"server_version\":") &&
              read_unsigned(reader, 0, &download->server_version) &&
              take(reader, ",\"last_integrated_client_version\":") &&
              read_unsigned(reader, 0, &download->last_integrated_client_version) &&
              take(reader, ",\"query_version\":") &&
              read_unsigned(reader, 0, &download->query_version) &&
              take(reader, ",\"last_in_batch\":") &&
              read_boolean(reader, &download->last_in_batch) &&
              take(reader, ",\"progress_estimate\":") &&
              read_number(reader, &progress, &integer, &as_integer) && progress >= 0.0 &&
              progress <= 1.0 && take(reader, ",\"changesets\":[");
    download->progress_estimate = progress;
    if (ok && !take(reader, "]")) {
        do
            ok = read_download_changeset(reader, download);
        while (ok && take(reader, ","));
        ok = ok && take(reader, "]");
    }
    ok = ok && read_access(reader, download) && take(reader, "}") && reader->at == reader->end;
    size_t count = download->changeset_count;
    return ok && (count == 0 || download->changesets[count - 1].server_version <=
                                    download->server_version);
}

bool protocol_read_download_text(const char *text, size_t length, protocol_message *out)
{
    frame_reader reader = { .text = text, .end = length };
    *out = (protocol_message){ 0 };
    bool read = length <= PROTOCOL_MAX_MESSAGE_BYTES && read_download(&reader, out);
    json_decref(reader.last_id);
    if (read)
        return true;
    protocol_message_clear(out);
    *out = (protocol_message){ 0 };
    return false;
}

int protocol_read_received(const char *text, size_t length, protocol_message *out,
                           protocol_error *error)
{
    if (protocol_read_download_text(text, length, out)) {
        *error = (protocol_error){ 0 };
        return 0;
    }
    return protocol_parse(text, length, out, error);
}

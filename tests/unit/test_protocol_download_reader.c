/*
 * Unit tests for protocol_download_reader.c: downloads written by the
 * server's writer (protocol_serialize_download) are read directly, other
 * frames go to protocol_parse, and for every frame, broken ones included,
 * protocol_read_received gives exactly what protocol_parse gives.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/changeset.h"
#include "realmfs/ejson.h"
#include "realmfs/protocol.h"
#include "realmfs/protocol_download_reader.h"

static const char object_id[] = "{\"$oid\": \"6650f0c2e4b0a1b2c3d4e5f6\"}";

/* A value from its Extended JSON text. */
static json_t *value_of(const char *text)
{
    char document[1024];
    snprintf(document, sizeof document, "{\"v\": %s}", text);
    ejson_error error;
    json_t *parsed = ejson_parse(document, strlen(document), &error);
    ck_assert_msg(parsed != NULL, "%s: %s", text, error.message);
    json_t *value = json_incref(json_object_get(parsed, "v"));
    json_decref(parsed);
    return value;
}

/* A download holding, per value, a replacement-like changeset of object
 * id (create, then a set of the value), each at the next server
 * version, and two access entries (object id read-only, Other 5
 * writable). */
static protocol_message download_of(const char *id, const char *const *values, size_t count)
{
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_DOWNLOAD, 7);
    protocol_download_body *download = &message.body.download;
    download->server_version = 40;
    download->last_integrated_client_version = 3;
    download->query_version = 2;
    download->progress_estimate = 0.25;
    json_t *object = value_of(id);
    for (size_t i = 0; i < count; i++) {
        changeset changes = { .origin = i, .client_version = 2 * i, .timestamp = 1714560000000 };
        json_t *value = value_of(values[i]);
        char message_text[200];
        ck_assert_int_eq(changeset_append(&changes, CHANGESET_CREATE, "Item", object, NULL, NULL,
                                          message_text, sizeof message_text), 0);
        ck_assert_msg(changeset_append(&changes, CHANGESET_SET, "Item", object, "field.inner",
                                       value, message_text, sizeof message_text) == 0,
                      "%s: %s", values[i], message_text);
        ck_assert_int_eq(protocol_download_add(download, 10 + i, &changes), 0);
        json_decref(value);
    }
    json_t *other = json_integer(5);
    ck_assert_int_eq(protocol_download_add_access(download, "Item", object, false), 0);
    ck_assert_int_eq(protocol_download_add_access(download, "Other", other, true), 0);
    json_decref(other);
    json_decref(object);
    return message;
}

static char *server_frame(const protocol_message *message, size_t *length)
{
    protocol_error error;
    char *frame = protocol_serialize_download(message, length, &error);
    ck_assert_msg(frame != NULL, "%s", error.message);
    return frame;
}

/* protocol_read_received gives what protocol_parse gives: the same
 * result, and the same message (as its canonical text) or the same
 * error. */
static void assert_reads_as_protocol_parse(const char *frame, size_t length)
{
    protocol_message read, parsed;
    protocol_error read_error, parse_error;
    int read_result = protocol_read_received(frame, length, &read, &read_error);
    int parse_result = protocol_parse(frame, length, &parsed, &parse_error);
    ck_assert_msg(read_result == parse_result, "%d, not %d (%s) for %.*s", read_result,
                  parse_result, parse_error.message, (int)length, frame);
    if (parse_result != 0) {
        ck_assert_int_eq(read_error.code, parse_error.code);
        ck_assert_uint_eq(read_error.session, parse_error.session);
        ck_assert_str_eq(read_error.message, parse_error.message);
        return;
    }
    size_t read_length, parsed_length;
    protocol_error error;
    char *read_text = protocol_serialize(&read, &read_length, &error);
    char *parsed_text = protocol_serialize(&parsed, &parsed_length, &error);
    ck_assert_ptr_nonnull(read_text);
    ck_assert_ptr_nonnull(parsed_text);
    ck_assert_str_eq(read_text, parsed_text);
    free(read_text);
    free(parsed_text);
    protocol_message_clear(&read);
    protocol_message_clear(&parsed);
}

static bool read_directly(const char *frame, size_t length)
{
    protocol_message message;
    bool direct = protocol_read_download_text(frame, length, &message);
    protocol_message_clear(&message);
    return direct;
}

/* The values a bootstrap carries most. */
static const char *const direct_values[] = {
    "\"plain\"",
    "\"quote \\\" backslash \\\\ slash / newline \\n tab \\t control \\u0001 nul \\u0000\"",
    "\"UTF-8: na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80, escaped \\u00e9 \\ud83d\\ude00\"",
    "\"\"",
    "0", "-12", "9007199254740992", "-9007199254740992",
    "1.5", "-0.25", "1.0", "1e+300", "5e-324", "-0.0",
    "true", "false", "null", "{}", "[]",
    "[1, \"a\", [true, {}, [null]], 2.5]",
    "{\"$oid\": \"0123456789abcdef01234567\"}",
    "{\"$date\": \"2024-05-01T12:00:00Z\"}",
    "{\"$date\": \"1999-12-31T23:59:59.999Z\"}",
};

/* The server's frame of message is read directly (or, with !direct, by
 * protocol_parse), with protocol_parse's result; message is cleared. */
static void assert_server_frame_read(protocol_message *message, bool direct)
{
    size_t length;
    char *frame = server_frame(message, &length);
    ck_assert_msg(read_directly(frame, length) == direct, "%s directly: %s",
                  direct ? "not read" : "read", frame);
    assert_reads_as_protocol_parse(frame, length);
    free(frame);
    protocol_message_clear(message);
}

START_TEST(test_server_downloads_are_read_directly)
{
    const char *const ids[] = { object_id, "5", "-7", "\"a string id\"", "\"\\u00e9t\\u00e9\"" };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        protocol_message message =
            download_of(ids[i], direct_values, sizeof direct_values / sizeof direct_values[0]);
        message.body.download.last_in_batch = i % 2 == 0;
        assert_server_frame_read(&message, true);
    }
    /* no changesets; progress written as 1.0 and 0.0 */
    for (int progress = 0; progress <= 1; progress++) {
        protocol_message message = download_of(object_id, NULL, 0);
        message.body.download.progress_estimate = progress;
        assert_server_frame_read(&message, true);
    }
}
END_TEST

START_TEST(test_other_forms_go_to_protocol_parse)
{
    const char *const other_values[] = {
        "9007199254740993",                         /* written as $numberLong */
        "{\"$date\": {\"$numberLong\": \"-5\"}}",   /* before 1970 */
        "{\"$numberDouble\": \"NaN\"}",
        "{\"$numberDecimal\": \"1.10\"}",
        "{\"$uuid\": \"0123abcd-0123-4567-89ab-0123456789ab\"}",
        "{\"$binary\": {\"base64\": \"AQID\", \"subType\": \"00\"}}",
        "[[[[[[[[[[1]]]]]]]]]]",                    /* deeper than the reader goes */
    };
    for (size_t i = 0; i < sizeof other_values / sizeof other_values[0]; i++) {
        protocol_message message = download_of(object_id, &other_values[i], 1);
        assert_server_frame_read(&message, false);
    }

    /* the same download spelled otherwise: with spaces, members reordered */
    protocol_message message = download_of(object_id, direct_values, 3);
    json_error_t json_error;
    size_t length;
    char *frame = server_frame(&message, &length);
    json_t *json = json_loadb(frame, length, JSON_ALLOW_NUL, &json_error);
    ck_assert_ptr_nonnull(json);
    const size_t flags[] = { JSON_INDENT(1), JSON_SORT_KEYS | JSON_COMPACT };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char *respelled = json_dumps(json, flags[i]);
        ck_assert(!read_directly(respelled, strlen(respelled)));
        assert_reads_as_protocol_parse(respelled, strlen(respelled));
        free(respelled);
    }
    json_decref(json);
    free(frame);
    protocol_message_clear(&message);

    const char *ident = "{\"type\":\"ident\",\"session\":1,\"file_identity\":4}";
    ck_assert(!read_directly(ident, strlen(ident)));
    assert_reads_as_protocol_parse(ident, strlen(ident));
}
END_TEST

/* The frame with the first occurrence of from replaced by to. */
static char *replaced(const char *frame, const char *from, const char *to)
{
    const char *found = strstr(frame, from);
    ck_assert_msg(found != NULL, "no %s in %s", from, frame);
    size_t before = (size_t)(found - frame);
    char *text = malloc(strlen(frame) - strlen(from) + strlen(to) + 1);
    ck_assert_ptr_nonnull(text);
    memcpy(text, frame, before);
    strcpy(text + before, to);
    strcat(text, found + strlen(from));
    return text;
}

START_TEST(test_broken_rules_get_protocol_parse_errors)
{
    static const char *const edits[][2] = {
        { "\"session\":7", "\"session\":0" },
        { "\"server_version\":40", "\"server_version\":10" },
        { "\"server_version\":11", "\"server_version\":10" },
        { "\"server_version\":10", "\"server_version\":0" },
        { "\"progress_estimate\":0.25", "\"progress_estimate\":1.5" },
        { "\"progress_estimate\":0.25", "\"progress_estimate\":-0.0" },
        { "\"last_in_batch\":false", "\"last_in_batch\":0" },
        { "\"query_version\":2", "\"query_version\":-2" },
        { "\"query_version\":2", "\"query_version\":9223372036854775808" },
        { "\"origin\":0", "\"origin\":1.0" },
        { "\"op\":\"create\"", "\"op\":\"move\"" },
        { "\"op\":\"create\"", "\"op\":\"set\"" },
        { "\"collection\":\"Item\"", "\"collection\":\"\"" },
        { "\"collection\":\"Item\"", "\"collection\":\"It\\u0000em\"" },
        { "\"path\":\"field.inner\"", "\"path\":\"field..inner\"" },
        { "\"path\":\"field.inner\"", "\"path\":\"_id\"" },
        { "\"value\":\"plain\"", "\"value\":\"bad \\ud800 surrogate\"" },
        { "\"value\":\"plain\"", "\"value\":\"bad \\udc00 surrogate\"" },
        { "\"value\":\"plain\"", "\"value\":\"bad \xc3\x28 UTF-8\"" },
        { "\"value\":\"plain\"", "\"value\":\"raw \t tab\"" },
        { "\"value\":\"plain\"", "\"value\":1e400" },
        { "\"value\":\"plain\"", "\"value\":01" },
        { "\"value\":\"plain\"", "\"value\":{\"a\":1}" },
        { "\"$oid\":\"6650f0c2e4b0a1b2c3d4e5f6\"", "\"$oid\":\"6650F0C2E4B0A1B2C3D4E5F6\"" },
        { "\"$oid\":\"6650f0c2e4b0a1b2c3d4e5f6\"", "\"$oid\":\"6650f0c2e4b0a1b2c3d4e5\"" },
        { "\"instructions\":[", "\"instructions\":[],\"x\":[" },
        { "\"changesets\":[", "\"changesets\":[1," },
        { "\"writable\":false", "\"writable\":null" },
        { "\"collection\":\"Other\"", "\"collection\":\"\"" },
        { "\"collection\":\"Other\"", "\"collection\":\"Ot\\u0000her\"" },
        { ",\"id\":5,", ",\"id\":5.5," },
        { ",\"id\":5,", ",\"id\":[5]," },
        { "\"writable\":true}", "\"writable\":true,\"x\":1}" },
        { "\"access\":[", "\"access\":[]," },
    };
    protocol_message message = download_of(object_id, direct_values, 2);
    size_t length;
    char *frame = server_frame(&message, &length);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *edited = replaced(frame, edits[i][0], edits[i][1]);
        assert_reads_as_protocol_parse(edited, strlen(edited));
        free(edited);
    }
    free(frame);
    protocol_message_clear(&message);
}
END_TEST

START_TEST(test_every_cut_and_changed_byte_reads_as_protocol_parse)
{
    const size_t picked[] = { 1, 2, 8, 19, 20, 22 };
    const char *values[sizeof picked / sizeof picked[0]];
    for (size_t i = 0; i < sizeof picked / sizeof picked[0]; i++)
        values[i] = direct_values[picked[i]];
    protocol_message message = download_of("\"id\"", values, sizeof values / sizeof values[0]);
    size_t length;
    char *frame = server_frame(&message, &length);
    for (size_t cut = 0; cut < length; cut++) {
        ck_assert(!read_directly(frame, cut));
        assert_reads_as_protocol_parse(frame, cut);
    }
    const char replacements[] = { '"', '}', ']', ',', '0', '-', 'e', 'u', '\\', '\xff' };
    char *changed = malloc(length);
    ck_assert_ptr_nonnull(changed);
    for (size_t at = 0; at < length; at++) {
        for (size_t i = 0; i < sizeof replacements; i++) {
            memcpy(changed, frame, length);
            changed[at] = replacements[i];
            assert_reads_as_protocol_parse(changed, length);
        }
    }
    free(changed);
    free(frame);
    protocol_message_clear(&message);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("protocol_download_reader");
    TCase *reading = tcase_create("reading");
    tcase_add_test(reading, test_server_downloads_are_read_directly);
    tcase_add_test(reading, test_other_forms_go_to_protocol_parse);
    tcase_add_test(reading, test_broken_rules_get_protocol_parse_errors);
    tcase_add_test(reading, test_every_cut_and_changed_byte_reads_as_protocol_parse);
    suite_add_tcase(suite, reading);
    return suite;
}

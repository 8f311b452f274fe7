/*
 * Unit tests for protocol.c: every message type round-trips byte for
 * byte, built messages come back equal, every class of malformed frame
 * gets its code and a message naming the member, and protocol_serialize
 * refuses what a peer would refuse.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/changeset.h"
#include "realmfs/ejson.h"
#include "realmfs/protocol.h"
#include "realmfs/value.h"

#define TEST_OBJECT_ID "{'$oid':'6650f0c2e4b0a1b2c3d4e5f6'}"

/* Test frames are written with single quotes so that they read easily;
 * this turns them into JSON.  A frame must not hold a single quote of its
 * own.  malloc'd. */
static char *json_text(const char *single_quoted)
{
    char *text = strdup(single_quoted);
    ck_assert_ptr_nonnull(text);
    for (char *c = text; *c != '\0'; c++) {
        if (*c == '\'')
            *c = '"';
    }
    return text;
}

static protocol_message parse_frame(const char *single_quoted)
{
    char *text = json_text(single_quoted);
    protocol_message message;
    protocol_error error;
    int result = protocol_parse(text, strlen(text), &message, &error);
    ck_assert_msg(result == 0, "refused %s: %d %s", text, result, error.message);
    free(text);
    return message;
}

static char *serialize(const protocol_message *message)
{
    size_t length;
    protocol_error error;
    char *text = protocol_serialize(message, &length, &error);
    ck_assert_msg(text != NULL, "cannot serialize: %d %s", error.code, error.message);
    ck_assert_uint_eq(length, strlen(text));
    return text;
}

/* The frame must be canonical: parsing it and serializing the message
 * gives back the same bytes. */
static void assert_round_trip(const char *single_quoted)
{
    char *expected = json_text(single_quoted);
    protocol_message message = parse_frame(single_quoted);
    char *actual = serialize(&message);
    ck_assert_str_eq(actual, expected);
    free(actual);
    free(expected);
    protocol_message_clear(&message);
}

/* Serializing, parsing and serializing again gives the same bytes. */
static void assert_built_round_trip(const protocol_message *message)
{
    char *first = serialize(message);
    protocol_message parsed;
    protocol_error error;
    ck_assert_int_eq(protocol_parse(first, strlen(first), &parsed, &error), 0);
    char *second = serialize(&parsed);
    ck_assert_str_eq(second, first);
    free(second);
    free(first);
    protocol_message_clear(&parsed);
}

static void assert_refused_bytes(const char *text, size_t length, protocol_error_code code,
                                 const char *message)
{
    protocol_message parsed;
    protocol_error error;
    int result = protocol_parse(text, length, &parsed, &error);
    ck_assert_msg(result == (int)code, "%.200s: got %d (%s), wanted %d", text, result,
                  error.message, code);
    ck_assert_int_eq(error.code, code);
    ck_assert_msg(strncmp(error.message, message, strlen(message)) == 0,
                  "%.200s:\n  got    %s\n  wanted %s", text, error.message, message);
    ck_assert_int_eq(parsed.type, 0);
    ck_assert_uint_eq(parsed.session, 0);
}

/* message is the start of the expected message ("message: invalid JSON"
 * leaves out jansson's wording); single quotes in it stand for double. */
static void assert_refused(const char *single_quoted, protocol_error_code code,
                           const char *message)
{
    char *text = json_text(single_quoted);
    char *expected = json_text(message);
    assert_refused_bytes(text, strlen(text), code, expected);
    free(expected);
    free(text);
}

/* A normalized value from its Extended JSON. */
static json_t *load(const char *single_quoted)
{
    char *text = json_text(single_quoted);
    json_t *raw = json_loads(text, JSON_DECODE_ANY, NULL);
    ck_assert_msg(raw != NULL, "bad test JSON %s", text);
    ejson_error error;
    json_t *value = ejson_normalize(raw, &error);
    ck_assert_msg(value != NULL, "bad test value %s: %s", text, error.message);
    json_decref(raw);
    free(text);
    return value;
}

/* A changeset of origin 7 that sets title on a Task. */
static changeset title_changeset(uint64_t client_version, const char *title)
{
    changeset built = {.origin = 7, .client_version = client_version,
                       .timestamp = 1714560000000 + (int64_t)client_version};
    json_t *id = load(TEST_OBJECT_ID);
    json_t *value = json_string(title);
    ck_assert_ptr_nonnull(value);
    ck_assert_int_eq(changeset_append(&built, CHANGESET_SET, "Task", id, "title", value, NULL, 0),
                     0);
    json_decref(value);
    json_decref(id);
    return built;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */

static const char *const canonical_frames[] = {
    "{'type':'bind','session':1,'file_identity':7,'last_server_version':42,"
    "'last_integrated_client_version':12}",
    "{'type':'bind','session':2,'file_identity':0,'last_server_version':0,"
    "'last_integrated_client_version':0}",
    "{'type':'upload','session':1,'last_integrated_server_version':42,'changesets':["
    "{'origin':7,'client_version':13,'timestamp':1714560000000,'instructions':["
    "{'op':'create','collection':'Task','id':" TEST_OBJECT_ID "},"
    "{'op':'set','collection':'Task','id':" TEST_OBJECT_ID ",'path':'title','value':'Buy milk'},"
    "{'op':'set','collection':'Task','id':" TEST_OBJECT_ID ",'path':'due',"
    "'value':{'$date':'2024-05-01T12:00:00Z'}},"
    "{'op':'set','collection':'Task','id':" TEST_OBJECT_ID ",'path':'address.city',"
    "'value':'Zürich'}]},"
    "{'origin':7,'client_version':14,'timestamp':1714560001000,'instructions':["
    "{'op':'unset','collection':'Task','id':5,'path':'notes'},"
    "{'op':'set','collection':'Task','id':5,'path':'ratio','value':2.5},"
    "{'op':'delete','collection':'Task','id':'a1'}]}]}",
    "{'type':'upload','session':1,'last_integrated_server_version':0,'changesets':[]}",
    "{'type':'query','session':1,'query_version':3,'subscriptions':{"
    "'Task':[{'name':'mine','query':'owner_id == \\'u1\\''},{'name':'open','query':'done == false'}],"
    "'Project':[{'name':'all','query':'TRUEPREDICATE'}]}}",
    "{'type':'query','session':1,'query_version':4,'subscriptions':{}}",
    "{'type':'unbind','session':1}",
    "{'type':'ping','timestamp':1714560000000}",
    "{'type':'mark','session':1,'request':4}",
    "{'type':'ident','session':2,'file_identity':8}",
    "{'type':'download','session':1,'server_version':45,'last_integrated_client_version':14,"
    "'query_version':3,'last_in_batch':true,'progress_estimate':1.0,'changesets':["
    "{'server_version':43,'origin':9,'client_version':3,'timestamp':1714560002000,"
    "'instructions':[{'op':'create','collection':'Task','id':{'$oid':'6650f0c2e4b0a1b2c3d4e5f7'}}]},"
    "{'server_version':45,'origin':0,'client_version':0,'timestamp':1714560003000,"
    "'instructions':[{'op':'set','collection':'Task','id':5,'path':'big',"
    "'value':{'$numberLong':'9007199254740993'}}]}]}",
    "{'type':'download','session':1,'server_version':45,'last_integrated_client_version':0,"
    "'query_version':0,'last_in_batch':false,'progress_estimate':0.25,'changesets':[]}",
    "{'type':'query_error','session':1,'query_version':4,'code':203,"
    "'message':'unknown field \\'colour\\' in Task'}",
    "{'type':'error','session':0,'code':106,'message':'the server is shutting down',"
    "'try_again':true,'backoff_seconds':5.0,'action':'reconnect'}",
    "{'type':'error','session':1,'code':205,'message':'write not allowed','try_again':true,"
    "'backoff_seconds':0.0,'action':'revert','compensating_write':{'collection':'Task',"
    "'id':" TEST_OBJECT_ID ",'reason':'only the owner may change title','server_document':"
    "{'_id':" TEST_OBJECT_ID ",'title':'Old title','tags':['a',{'b':1}]},'client_version':13}}",
    "{'type':'error','session':1,'code':205,'message':'','try_again':true,'backoff_seconds':0.0,"
    "'action':'revert','compensating_write':{'collection':'Task','id':7,'reason':'deleted',"
    "'server_document':null,'client_version':2}}",
    "{'type':'unbound','session':1}",
    "{'type':'pong','timestamp':1714560000000}",
    "{'type':'download','session':1,'server_version':46,'last_integrated_client_version':14,"
    "'query_version':3,'last_in_batch':true,'progress_estimate':1.0,'changesets':[],'access':["
    "{'collection':'Task','id':" TEST_OBJECT_ID ",'writable':false},"
    "{'collection':'Task','id':5,'writable':true}]}",
    "{'type':'schema','session':1,'development_mode':false,'collections':{'Task':{"
    "'bsonType':'object','title':'Task','properties':{'_id':{'bsonType':'objectId'},"
    "'done':{'bsonType':'bool'}},'required':['_id']},'Project':{'bsonType':'object'}}}",
    "{'type':'schema','session':2,'development_mode':true,'collections':{}}",
    "{'type':'login','user_id':'6650f0c2e4b0a1b2c3d4e5f7','token':"
    "'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef','expires':1717152000000}",
};

START_TEST(test_every_message_type_round_trips)
{
    bool seen[PROTOCOL_MESSAGE_LOGIN + 1] = {false};
    for (size_t i = 0; i < sizeof canonical_frames / sizeof canonical_frames[0]; i++) {
        assert_round_trip(canonical_frames[i]);
        protocol_message message = parse_frame(canonical_frames[i]);
        seen[message.type] = true;
        protocol_message_clear(&message);
    }
    for (int type = 0; type <= PROTOCOL_MESSAGE_LOGIN; type++)
        ck_assert_msg(seen[type], "no frame of type %s", protocol_message_type_name(type));
}
END_TEST

START_TEST(test_members_in_any_order_and_spacing)
{
    protocol_message message = parse_frame(
        "{ 'last_integrated_client_version': 12, 'last_server_version': 42,\n"
        "  'file_identity': 7, 'session': 1, 'type': 'bind' }");
    char *text = serialize(&message);
    char *expected = json_text(canonical_frames[0]);
    ck_assert_str_eq(text, expected);
    free(expected);
    free(text);
    protocol_message_clear(&message);
}
END_TEST

START_TEST(test_parsed_fields)
{
    protocol_message bind = parse_frame(canonical_frames[0]);
    ck_assert_int_eq(bind.type, PROTOCOL_MESSAGE_BIND);
    ck_assert_uint_eq(bind.session, 1);
    ck_assert_uint_eq(bind.body.bind.file_identity, 7);
    ck_assert_uint_eq(bind.body.bind.last_server_version, 42);
    ck_assert_uint_eq(bind.body.bind.last_integrated_client_version, 12);
    protocol_message_clear(&bind);

    protocol_message query = parse_frame(canonical_frames[4]);
    ck_assert_uint_eq(query.body.query.query_version, 3);
    ck_assert_uint_eq(query.body.query.subscription_count, 3);
    ck_assert_str_eq(query.body.query.subscriptions[1].collection, "Task");
    ck_assert_str_eq(query.body.query.subscriptions[1].name, "open");
    ck_assert_str_eq(query.body.query.subscriptions[1].query, "done == false");
    ck_assert_str_eq(query.body.query.subscriptions[2].collection, "Project");
    protocol_message_clear(&query);

    protocol_message download = parse_frame(canonical_frames[10]);
    const protocol_download_body *body = &download.body.download;
    ck_assert_uint_eq(body->server_version, 45);
    ck_assert_uint_eq(body->last_integrated_client_version, 14);
    ck_assert(body->last_in_batch);
    ck_assert_double_eq(body->progress_estimate, 1.0);
    ck_assert_uint_eq(body->changeset_count, 2);
    ck_assert_uint_eq(body->changesets[0].server_version, 43);
    ck_assert_uint_eq(body->changesets[0].changeset.origin, 9);
    ck_assert_int_eq(json_integer_value(body->changesets[1].changeset.instructions[0].value),
                     INT64_C(9007199254740993));
    protocol_message_clear(&download);

    protocol_message error = parse_frame(canonical_frames[14]);
    ck_assert_int_eq(error.body.error.code, PROTOCOL_ERROR_COMPENSATING_WRITE);
    ck_assert_int_eq(error.body.error.action, PROTOCOL_ACTION_REVERT);
    ck_assert_ptr_nonnull(error.body.error.compensating_write);
    ck_assert_str_eq(error.body.error.compensating_write->collection, "Task");
    ck_assert_str_eq(json_string_value(json_object_get(
                         error.body.error.compensating_write->server_document, "title")),
                     "Old title");
    ck_assert_uint_eq(error.body.error.compensating_write->client_version, 13);
    protocol_message_clear(&error);

    protocol_message no_document = parse_frame(canonical_frames[15]);
    ck_assert_ptr_null(no_document.body.error.compensating_write->server_document);
    protocol_message_clear(&no_document);

    protocol_message access = parse_frame(canonical_frames[18]);
    ck_assert_uint_eq(access.body.download.access_count, 2);
    ck_assert_str_eq(access.body.download.access[0].collection, "Task");
    ck_assert_int_eq(value_type_of(access.body.download.access[0].id), VALUE_OBJECT_ID);
    ck_assert(!access.body.download.access[0].writable);
    ck_assert_int_eq(json_integer_value(access.body.download.access[1].id), 5);
    ck_assert(access.body.download.access[1].writable);
    protocol_message_clear(&access);

    protocol_message without_access = parse_frame(canonical_frames[10]);
    ck_assert_uint_eq(without_access.body.download.access_count, 0);
    protocol_message_clear(&without_access);

    protocol_message schema = parse_frame(canonical_frames[19]);
    ck_assert_int_eq(schema.type, PROTOCOL_MESSAGE_SCHEMA);
    ck_assert(!schema.body.schema.development_mode);
    ck_assert_uint_eq(json_object_size(schema.body.schema.collections), 2);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(schema.body.schema.collections, "Task"), "title")),
                     "Task");
    protocol_message_clear(&schema);
    schema = parse_frame(canonical_frames[20]);
    ck_assert(schema.body.schema.development_mode);
    protocol_message_clear(&schema);
}
END_TEST

START_TEST(test_built_messages_round_trip)
{
    protocol_message upload;
    protocol_message_init(&upload, PROTOCOL_MESSAGE_UPLOAD, 3);
    upload.body.upload.last_integrated_server_version = 10;
    for (uint64_t version = 1; version <= 20; version++) {
        changeset added = title_changeset(version, "title");
        ck_assert_int_eq(protocol_upload_add(&upload.body.upload, &added), 0);
        ck_assert_uint_eq(added.count, 0);
    }
    assert_built_round_trip(&upload);
    protocol_message_clear(&upload);

    protocol_message download;
    protocol_message_init(&download, PROTOCOL_MESSAGE_DOWNLOAD, 3);
    download.body.download.server_version = 30;
    download.body.download.progress_estimate = 0.1;
    for (uint64_t version = 1; version <= 5; version++) {
        changeset added = title_changeset(version, "é");
        ck_assert_int_eq(protocol_download_add(&download.body.download, version * 6, &added), 0);
    }
    json_t *id = load(TEST_OBJECT_ID);
    ck_assert_int_eq(protocol_download_add_access(&download.body.download, "Task", id, false), 0);
    json_decref(id);
    id = load("'a1'");
    ck_assert_int_eq(protocol_download_add_access(&download.body.download, "Note", id, true), 0);
    json_decref(id);
    ck_assert_uint_eq(download.body.download.access_count, 2);
    ck_assert_str_eq(download.body.download.access[1].collection, "Note");
    ck_assert(download.body.download.access[1].writable);
    assert_built_round_trip(&download);
    protocol_message_clear(&download);

    protocol_message query;
    protocol_message_init(&query, PROTOCOL_MESSAGE_QUERY, 3);
    query.body.query.query_version = 1;
    ck_assert_int_eq(protocol_query_add(&query.body.query, "Task", "a", "done == true"), 0);
    ck_assert_int_eq(protocol_query_add(&query.body.query, "Project", "a", "TRUEPREDICATE"), 0);
    ck_assert_int_eq(protocol_query_add(&query.body.query, "Task", "b", "done == false"), 0);
    char *text = serialize(&query);
    char *expected = json_text("{'type':'query','session':3,'query_version':1,'subscriptions':{"
                               "'Task':[{'name':'a','query':'done == true'},"
                               "{'name':'b','query':'done == false'}],"
                               "'Project':[{'name':'a','query':'TRUEPREDICATE'}]}}");
    ck_assert_str_eq(text, expected);
    free(expected);
    free(text);
    protocol_message_clear(&query);
}
END_TEST

START_TEST(test_error_init)
{
    protocol_message error;
    ck_assert_int_eq(protocol_error_init(&error, 0, PROTOCOL_ERROR_GOING_AWAY, "bye"), 0);
    ck_assert_int_eq(error.type, PROTOCOL_MESSAGE_ERROR);
    ck_assert(error.body.error.try_again);
    ck_assert_int_eq(error.body.error.action, PROTOCOL_ACTION_RECONNECT);
    ck_assert_double_eq(error.body.error.backoff_seconds, 5.0);
    char *text = serialize(&error);
    ck_assert_str_eq(text, "{\"type\":\"error\",\"session\":0,\"code\":106,\"message\":\"bye\","
                           "\"try_again\":true,\"backoff_seconds\":5.0,\"action\":\"reconnect\"}");
    free(text);
    protocol_message_clear(&error);

    ck_assert_int_eq(protocol_error_init(&error, 4, PROTOCOL_ERROR_BAD_FILE_IDENTITY, "who?"), 0);
    ck_assert_int_eq(error.body.error.action, PROTOCOL_ACTION_CLIENT_RESET);
    assert_built_round_trip(&error);
    protocol_message_clear(&error);

    ck_assert_int_eq(protocol_error_init(&error, 0, 150, "no such code"), -EINVAL);
}
END_TEST

START_TEST(test_names_and_senders)
{
    ck_assert_str_eq(protocol_error_code_name(PROTOCOL_ERROR_BAD_CHANGESET), "bad_changeset");
    ck_assert_str_eq(protocol_error_code_name(100), "malformed_message");
    ck_assert_ptr_null(protocol_error_code_name(0));
    ck_assert_ptr_null(protocol_error_code_name(299));
    ck_assert_str_eq(protocol_message_type_name(PROTOCOL_MESSAGE_QUERY_ERROR), "query_error");
    ck_assert_str_eq(protocol_message_type_name(PROTOCOL_MESSAGE_SCHEMA), "schema");
    ck_assert_str_eq(protocol_message_type_name(PROTOCOL_MESSAGE_LOGIN), "login");
    ck_assert_ptr_null(protocol_message_type_name(PROTOCOL_MESSAGE_LOGIN + 1));
    ck_assert(protocol_sent_by(PROTOCOL_MESSAGE_BIND, PROTOCOL_CLIENT));
    ck_assert(!protocol_sent_by(PROTOCOL_MESSAGE_BIND, PROTOCOL_SERVER));
    ck_assert(protocol_sent_by(PROTOCOL_MESSAGE_DOWNLOAD, PROTOCOL_SERVER));
    ck_assert(!protocol_sent_by(PROTOCOL_MESSAGE_DOWNLOAD, PROTOCOL_CLIENT));
    ck_assert(protocol_sent_by(PROTOCOL_MESSAGE_MARK, PROTOCOL_CLIENT));
    ck_assert(protocol_sent_by(PROTOCOL_MESSAGE_MARK, PROTOCOL_SERVER));
    ck_assert(protocol_sent_by(PROTOCOL_MESSAGE_SCHEMA, PROTOCOL_SERVER));
    ck_assert(!protocol_sent_by(PROTOCOL_MESSAGE_SCHEMA, PROTOCOL_CLIENT));
    ck_assert(protocol_sent_by(PROTOCOL_MESSAGE_LOGIN, PROTOCOL_SERVER));
    ck_assert(!protocol_sent_by(PROTOCOL_MESSAGE_LOGIN, PROTOCOL_CLIENT));
    ck_assert(!protocol_sent_by(PROTOCOL_MESSAGE_LOGIN + 1, PROTOCOL_SERVER));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Refused frames                                                            */

typedef struct refused_frame {
    const char *frame;
    protocol_error_code code;
    const char *message;
} refused_frame;

#define BIND_REST "'file_identity':7,'last_server_version':1,'last_integrated_client_version':1"
#define CHANGESET_HEAD "'origin':7,'timestamp':1"
#define SET_TITLE "{'op':'set','collection':'Task','id':5,'path':'title','value':'x'}"
#define UPLOAD_HEAD "{'type':'upload','session':4,'last_integrated_server_version':0,"
#define DOWNLOAD_HEAD                                                                   \
    "{'type':'download','session':4,'server_version':9,'last_integrated_client_version':0," \
    "'query_version':0,'last_in_batch':true,'progress_estimate':1,"
#define QUERY_HEAD "{'type':'query','session':4,'query_version':1,'subscriptions':"
#define ERROR_HEAD "{'type':'error','session':4,'code':205,'message':'m','try_again':true,"
#define COMPENSATING_HEAD \
    ERROR_HEAD "'backoff_seconds':0,'action':'revert','compensating_write':{'collection':'Task',"
#define LOGIN_HEAD "{'type':'login','user_id':'6650f0c2e4b0a1b2c3d4e5f7',"
#define LOGIN_TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const refused_frame refused_frames[] = {
    /* the frame */
    {"[{'type':'ping','timestamp':1}]", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "message: must be a JSON object"},
    {"'ping'", PROTOCOL_ERROR_MALFORMED_MESSAGE, "message: invalid JSON (line 1, column"},
    {"{'type':'ping','timestamp':1} x", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "message: invalid JSON (line 1, column"},
    {"{'type':'ping','timestamp':1}{}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "message: invalid JSON (line 1, column"},
    {"{'type':'ping','timestamp':1", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "message: invalid JSON (line 1, column"},
    {"{'type':'ping','timestamp':1,'timestamp':2}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "message: invalid JSON (line 1, column"},
    {"   ", PROTOCOL_ERROR_MALFORMED_MESSAGE, "message: invalid JSON (line 1, column"},
    /* the type */
    {"{'session':1}", PROTOCOL_ERROR_MALFORMED_MESSAGE, "type: missing"},
    {"{'type':5,'session':1}", PROTOCOL_ERROR_MALFORMED_MESSAGE, "type: must be a string"},
    {"{'type':'bnd','session':1}", PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE,
     "type: unknown message type 'bnd'"},
    {"{'type':'Bind','session':1}", PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE,
     "type: unknown message type 'Bind'"},
    {"{'type':'bind\\u0000','session':1}", PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE,
     "type: unknown message type 'bind'"},
    /* members */
    {"{'type':'bind','sesion':1," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.sesion: unknown member"},
    {"{'type':'ping','session':1,'timestamp':1}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "ping.session: unknown member"},
    {"{'type':'bind','session':1,'file_identity':7,'last_server_version':1}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "bind.last_integrated_client_version: missing"},
    {"{'type':'unbind'}", PROTOCOL_ERROR_MALFORMED_MESSAGE, "unbind.session: missing"},
    /* integers */
    {"{'type':'bind','session':'1'," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'bind','session':0," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'bind','session':-1," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'bind','session':1.5," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'bind','session':1.0," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'bind','session':1e3," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'bind','session':null," BIND_REST "}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.session: must be an integer from 1 to 2^63 - 1"},
    {"{'type':'ping','timestamp':-5}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "ping.timestamp: must be an integer from 0 to 2^63 - 1"},
    {"{'type':'mark','session':1,'request':true}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "mark.request: must be an integer from 0 to 2^63 - 1"},
    /* beyond 64 bits: jansson refuses the number itself, at its column */
    {"{'type':'ping','timestamp':9223372036854775808}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "message: invalid JSON (line 1, column 46): too big integer"},
    {"{'type':'ping','timestamp':9223372036854775807}", 0, NULL},
    {"{'type':'ident','session':1,'file_identity':0}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "ident.file_identity: must be an integer from 1 to 2^63 - 1"},
    /* bind */
    {"{'type':'bind','session':1,'file_identity':0,'last_server_version':3,"
     "'last_integrated_client_version':0}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.last_server_version: must be 0 when file_identity is 0"},
    {"{'type':'bind','session':1,'file_identity':0,'last_server_version':0,"
     "'last_integrated_client_version':3}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "bind.last_integrated_client_version: must be 0 when file_identity is 0"},
    /* upload */
    {UPLOAD_HEAD "'changesets':{}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "upload.changesets: must be an array"},
    {UPLOAD_HEAD "'changesets':[5]}", PROTOCOL_ERROR_BAD_CHANGESET,
     "upload.changesets[0]: not a JSON object"},
    {UPLOAD_HEAD "'changesets':[{'client_version':1,'timestamp':1,'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "upload.changesets[0]: missing 'origin'"},
    {UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':1,'instructions':[],"
                 "'extra':1}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "upload.changesets[0]: unknown member 'extra'"},
    {UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':1,'instructions':["
                 "{'op':'set','collection':'Task','id':5,'path':'','value':1}]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "upload.changesets[0].instructions[0]: path is empty"},
    {UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':1,'instructions':["
                 SET_TITLE ",{'op':'move','collection':'Task','id':5}]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "upload.changesets[0].instructions[1]: unknown op 'move'"},
    {UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':0,'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "upload.changesets[0].client_version: must be at least 1"},
    {UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':3,'instructions':[]},"
                 "{" CHANGESET_HEAD ",'client_version':4,'instructions':[]},"
                 "{" CHANGESET_HEAD ",'client_version':4,'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET,
     "upload.changesets[2].client_version: must be greater than the previous one (4)"},
    {UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':3,'instructions':[]},"
                 "{" CHANGESET_HEAD ",'client_version':2,'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET,
     "upload.changesets[1].client_version: must be greater than the previous one (3)"},
    /* download */
    {DOWNLOAD_HEAD "'changesets':[{" CHANGESET_HEAD ",'client_version':1,'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "download.changesets[0].server_version: missing"},
    {DOWNLOAD_HEAD "'changesets':[{'server_version':-1," CHANGESET_HEAD ",'client_version':1,"
                   "'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET,
     "download.changesets[0].server_version: must be an integer from 1 to 2^63 - 1"},
    {DOWNLOAD_HEAD "'changesets':[[]]}", PROTOCOL_ERROR_BAD_CHANGESET,
     "download.changesets[0]: must be an object"},
    {DOWNLOAD_HEAD "'changesets':[{'server_version':5," CHANGESET_HEAD ",'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET, "download.changesets[0]: missing 'client_version'"},
    {DOWNLOAD_HEAD "'changesets':[{'server_version':5," CHANGESET_HEAD ",'client_version':1,"
                   "'instructions':[]},{'server_version':5," CHANGESET_HEAD ",'client_version':1,"
                   "'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET,
     "download.changesets[1].server_version: must be greater than the previous one (5)"},
    {DOWNLOAD_HEAD "'changesets':[{'server_version':10," CHANGESET_HEAD ",'client_version':1,"
                   "'instructions':[]}]}",
     PROTOCOL_ERROR_BAD_CHANGESET,
     "download.changesets[0].server_version: 10 is greater than the server_version of the "
     "message (9)"},
    {"{'type':'download','session':4,'server_version':9,'last_integrated_client_version':0,"
     "'query_version':0,'last_in_batch':1,'progress_estimate':1,'changesets':[]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.last_in_batch: must be true or false"},
    {"{'type':'download','session':4,'server_version':9,'last_integrated_client_version':0,"
     "'query_version':0,'last_in_batch':true,'progress_estimate':1.5,'changesets':[]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.progress_estimate: must be a number from 0 to 1"},
    {"{'type':'download','session':4,'server_version':9,'last_integrated_client_version':0,"
     "'query_version':0,'last_in_batch':true,'progress_estimate':'1','changesets':[]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.progress_estimate: must be a number from 0 to 1"},
    /* query */
    {QUERY_HEAD "[]}", PROTOCOL_ERROR_MALFORMED_MESSAGE, "query.subscriptions: must be an object"},
    {QUERY_HEAD "{'Task':{'name':'a','query':'TRUEPREDICATE'}}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task: must be a non-empty array"},
    {QUERY_HEAD "{'Task':[]}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task: must be a non-empty array"},
    {QUERY_HEAD "{'':[{'name':'a','query':'TRUEPREDICATE'}]}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions: a collection name must not be empty or hold a NUL"},
    {QUERY_HEAD "{'Task':['a']}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task[0]: must be an object"},
    {QUERY_HEAD "{'Task':[{'name':'a','query':5}]}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task[0].query: must be a string"},
    {QUERY_HEAD "{'Task':[{'name':'a','query':''}]}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task[0].query: must not be empty"},
    {QUERY_HEAD "{'Task':[{'name':'a\\u0000b','query':'TRUEPREDICATE'}]}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "query.subscriptions.Task[0].name: must not hold a NUL"},
    {QUERY_HEAD "{'Task':[{'query':'TRUEPREDICATE'}]}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task[0].name: missing"},
    {QUERY_HEAD "{'Task':[{'name':'a','query':'TRUEPREDICATE','sort':1}]}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "query.subscriptions.Task[0].sort: unknown member"},
    {QUERY_HEAD "{'Task':[{'name':'b','query':'x'},{'name':'a','query':'y'},"
                "{'name':'b','query':'z'}]}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query.subscriptions.Task[2].name: 'b' is already the name of query.subscriptions.Task[0]"},
    {QUERY_HEAD "{'Task':[{'name':'a','query':'x'}],'Project':[{'name':'a','query':'y'}]}}", 0,
     NULL},
    {"{'type':'query','session':4,'query_version':0,'subscriptions':{}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "query.query_version: must be an integer from 1 to 2^63 - 1"},
    /* query_error and error */
    {"{'type':'query_error','session':4,'query_version':1,'code':106,'message':'m'}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "query_error.code: 106 is not a session-level code (200-299)"},
    {"{'type':'error','session':0,'code':999,'message':'m','try_again':true,"
     "'backoff_seconds':0,'action':'none'}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.code: 999 is not an error code"},
    {"{'type':'error','session':0,'code':'bad_query','message':'m','try_again':true,"
     "'backoff_seconds':0,'action':'none'}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.code: must be an integer"},
    {ERROR_HEAD "'backoff_seconds':-1,'action':'revert'}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.backoff_seconds: must be a number >= 0"},
    {ERROR_HEAD "'backoff_seconds':0,'action':'restart'}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.action: must be 'none', 'client_reset', 'reconnect' or 'revert'"},
    {ERROR_HEAD "'backoff_seconds':0,'action':5}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.action: must be 'none', 'client_reset', 'reconnect' or 'revert'"},
    {"{'type':'error','session':0,'code':205,'message':'m','try_again':true,"
     "'backoff_seconds':0,'action':'revert'}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.session: must be at least 1 with the session-level code 205"},
    {"{'type':'error','session':3,'code':106,'message':'m','try_again':true,"
     "'backoff_seconds':0,'action':'reconnect'}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.session: must be 0 with the connection-level code 106"},
    {"{'type':'error','session':3,'code':204,'message':'m','try_again':false,'backoff_seconds':0,"
     "'action':'none','compensating_write':{'collection':'Task','id':1,'reason':'r',"
     "'server_document':null,'client_version':1}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.compensating_write: only allowed with code 205"},
    {ERROR_HEAD "'backoff_seconds':0,'action':'revert','compensating_write':5}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.compensating_write: must be an object"},
    {COMPENSATING_HEAD "'id':[1],'reason':'r','server_document':null}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.compensating_write.id: must be a string, int or ObjectId, not array"},
    {COMPENSATING_HEAD "'id':{'$oid':'xyz'},'reason':'r','server_document':null}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.compensating_write.id: "},
    {COMPENSATING_HEAD "'id':1,'reason':'r','server_document':'gone'}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.compensating_write.server_document: must be a document or null"},
    {COMPENSATING_HEAD "'id':1,'reason':'r'}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.compensating_write.server_document: missing"},
    {COMPENSATING_HEAD "'id':1,'reason':'r','server_document':null,'client_version':1,'why':1}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.compensating_write.why: unknown member"},
    {COMPENSATING_HEAD "'id':1,'reason':'r','server_document':null}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "error.compensating_write.client_version: missing"},
    {COMPENSATING_HEAD "'id':1,'reason':'r','server_document':null,'client_version':0}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "error.compensating_write.client_version: must be an integer from 1 to 2^63 - 1"},
    /* download access */
    {DOWNLOAD_HEAD "'changesets':[],'access':{}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "download.access: must be an array"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[true]}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "download.access[0]: must be an object"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[{'collection':'Task','id':1}]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.access[0].writable: missing"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[{'collection':'Task','id':1,'writable':true},"
                   "{'collection':'','id':1,'writable':true}]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.access[1].collection: must not be empty"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[{'collection':'Task','id':1.5,'writable':true}]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "download.access[0].id: must be a string, int or ObjectId, not double"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[{'collection':'Task','id':1,'writable':0}]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.access[0].writable: must be true or false"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[{'collection':'Task','id':1,'writable':true,"
                   "'mode':1}]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "download.access[0].mode: unknown member"},
    {DOWNLOAD_HEAD "'changesets':[],'access':[]}", 0, NULL},
    /* schema */
    {"{'type':'schema','session':1,'collections':{}}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "schema.development_mode: missing"},
    {"{'type':'schema','session':1,'development_mode':false,'collections':[]}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "schema.collections: must be an object"},
    {"{'type':'schema','session':1,'development_mode':false,'collections':{'Task':true}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "schema.collections.Task: must be an object"},
    {"{'type':'schema','session':1,'development_mode':false,'collections':{'':{}}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "schema.collections: a collection name must not be empty or hold a NUL"},
    {"{'type':'schema','session':0,'development_mode':false,'collections':{}}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "schema.session: must be an integer from 1 to 2^63 - 1"},
    /* login */
    {LOGIN_HEAD "'token':'" LOGIN_TOKEN "'}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "login.expires: missing"},
    {LOGIN_HEAD "'token':'" LOGIN_TOKEN "','expires':1,'session':1}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "login.session: unknown member"},
    {LOGIN_HEAD "'token':'" LOGIN_TOKEN "0','expires':1}", PROTOCOL_ERROR_MALFORMED_MESSAGE,
     "login.token: must be 64 lowercase hex digits"},
    {LOGIN_HEAD "'token':'0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef',"
                "'expires':1}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "login.token: must be 64 lowercase hex digits"},
    {"{'type':'login','user_id':'6650f0c2e4b0a1b2c3d4e5f','token':'" LOGIN_TOKEN "',"
     "'expires':1}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "login.user_id: must be 24 lowercase hex digits"},
    {"{'type':'login','user_id':'','token':'" LOGIN_TOKEN "','expires':1}",
     PROTOCOL_ERROR_MALFORMED_MESSAGE, "login.user_id: must not be empty"},
};

START_TEST(test_refused_frames)
{
    for (size_t i = 0; i < sizeof refused_frames / sizeof refused_frames[0]; i++) {
        const refused_frame *refused = &refused_frames[i];
        if (refused->message) {
            assert_refused(refused->frame, refused->code, refused->message);
        } else {
            protocol_message message = parse_frame(refused->frame);
            protocol_message_clear(&message);
        }
    }
}
END_TEST

START_TEST(test_empty_frame)
{
    assert_refused_bytes("", 0, PROTOCOL_ERROR_MALFORMED_MESSAGE, "message: empty frame");
    assert_refused_bytes(NULL, 0, PROTOCOL_ERROR_MALFORMED_MESSAGE, "message: empty frame");
}
END_TEST

START_TEST(test_invalid_utf8)
{
    const char text[] = "{\"type\":\"query_error\",\"session\":1,\"query_version\":1,"
                        "\"code\":203,\"message\":\"caf\xe9\"}";
    assert_refused_bytes(text, sizeof text - 1, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                         "message: invalid JSON (line 1, column");
}
END_TEST

START_TEST(test_nul_byte_outside_strings)
{
    const char text[] = "{\"type\":\"ping\",\"timestamp\":1}\0";
    assert_refused_bytes(text, sizeof text, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                         "message: invalid JSON (line 1, column");
}
END_TEST

/* A frame of exactly size bytes: a ping padded with spaces. */
static char *padded_ping(size_t size)
{
    char *text = malloc(size);
    ck_assert_ptr_nonnull(text);
    const char ping[] = "{\"type\":\"ping\",\"timestamp\":1}";
    memset(text, ' ', size);
    memcpy(text, ping, sizeof ping - 1);
    return text;
}

START_TEST(test_frame_size_limit)
{
    char *at_limit = padded_ping(PROTOCOL_MAX_MESSAGE_BYTES);
    protocol_message message;
    protocol_error error;
    ck_assert_int_eq(protocol_parse(at_limit, PROTOCOL_MAX_MESSAGE_BYTES, &message, &error), 0);
    protocol_message_clear(&message);
    free(at_limit);

    char *over = padded_ping(PROTOCOL_MAX_MESSAGE_BYTES + 1);
    assert_refused_bytes(over, PROTOCOL_MAX_MESSAGE_BYTES + 1, PROTOCOL_ERROR_MESSAGE_TOO_LARGE,
                         "message: 16777217 bytes, more than the 16777216 allowed");
    free(over);
}
END_TEST

/* A set of path "deep" whose value nests levels arrays around leaf. */
static char *deep_upload(size_t levels, const char *leaf)
{
    size_t size = 2 * levels + 1024;
    char *text = malloc(size);
    ck_assert_ptr_nonnull(text);
    int written = snprintf(text, size,
                           "{\"type\":\"upload\",\"session\":1,\"last_integrated_server_version\":0,"
                           "\"changesets\":[{\"origin\":7,\"client_version\":1,\"timestamp\":1,"
                           "\"instructions\":[{\"op\":\"set\",\"collection\":\"Task\",\"id\":5,"
                           "\"path\":\"deep\",\"value\":");
    size_t length = (size_t)written;
    memset(text + length, '[', levels);
    length += levels;
    length += (size_t)snprintf(text + length, size - length, "%s", leaf);
    memset(text + length, ']', levels);
    length += levels;
    snprintf(text + length, size - length, "}]}]}");
    return text;
}

START_TEST(test_nesting_limit)
{
    /* The deepest value a changeset allows, with a leaf that is written a
     * level deeper than it is read: the frame is exactly at the limit. */
    char *deepest = deep_upload(CHANGESET_MAX_DEPTH - 2, "{\"$date\":-1}");
    protocol_message message;
    protocol_error error;
    ck_assert_msg(protocol_parse(deepest, strlen(deepest), &message, &error) == 0, "%s",
                  error.message);
    char *text = serialize(&message);
    ck_assert_msg(strstr(text, "{\"$date\":{\"$numberLong\":\"-1\"}}") != NULL, "%s", text);
    protocol_message_clear(&message);
    ck_assert_int_eq(protocol_parse(text, strlen(text), &message, &error), 0);
    protocol_message_clear(&message);
    free(text);
    free(deepest);

    char *too_deep = deep_upload(PROTOCOL_MAX_DEPTH - 4, "1");
    assert_refused_bytes(too_deep, strlen(too_deep), PROTOCOL_ERROR_MALFORMED_MESSAGE,
                         "message: nests deeper than 105 levels");
    free(too_deep);

    /* Brackets inside strings are not nesting. */
    char brackets[PROTOCOL_MAX_DEPTH * 2 + 1];
    memset(brackets, '[', sizeof brackets - 1);
    brackets[sizeof brackets - 1] = '\0';
    char frame[sizeof brackets + 128];
    snprintf(frame, sizeof frame,
             "{\"type\":\"query_error\",\"session\":1,\"query_version\":1,\"code\":203,"
             "\"message\":\"\\\"%s\"}",
             brackets);
    ck_assert_int_eq(protocol_parse(frame, strlen(frame), &message, &error), 0);
    protocol_message_clear(&message);
}
END_TEST

START_TEST(test_server_document_depth)
{
    /* {"a": [[...[2^60]...]]} nests 101 levels as read, but 2^60 is written
     * as {"$numberLong": ...}, one level more. */
    char document[512] = "";
    char frame[1024];
    for (size_t i = 0; i < CHANGESET_MAX_DEPTH; i++)
        strcat(document, "[");
    strcat(document, "1152921504606846976");
    for (size_t i = 0; i < CHANGESET_MAX_DEPTH; i++)
        strcat(document, "]");
    snprintf(frame, sizeof frame,
             "{\"type\":\"error\",\"session\":4,\"code\":205,\"message\":\"m\",\"try_again\":true,"
             "\"backoff_seconds\":0,\"action\":\"revert\",\"compensating_write\":{\"collection\":"
             "\"Task\",\"id\":1,\"reason\":\"r\",\"server_document\":{\"a\":%s}}}",
             document);
    assert_refused_bytes(frame, strlen(frame), PROTOCOL_ERROR_MALFORMED_MESSAGE,
                         "error.compensating_write.server_document: nests deeper than 101 levels");
}
END_TEST

START_TEST(test_refusal_names_the_session)
{
    char *text = json_text(UPLOAD_HEAD "'changesets':[{" CHANGESET_HEAD
                                       ",'client_version':0,'instructions':[]}]}");
    protocol_message message;
    protocol_error error;
    ck_assert_int_eq(protocol_parse(text, strlen(text), &message, &error),
                     PROTOCOL_ERROR_BAD_CHANGESET);
    ck_assert_uint_eq(error.session, 4);
    free(text);

    text = json_text("{'type':'unbind','session':4,'x':1}");
    ck_assert_int_eq(protocol_parse(text, strlen(text), &message, &error),
                     PROTOCOL_ERROR_MALFORMED_MESSAGE);
    ck_assert_uint_eq(error.session, 0);
    free(text);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Serializing refuses what a peer would                                     */

static void assert_not_serialized(const protocol_message *message, protocol_error_code code,
                                  const char *expected)
{
    size_t length = 12345;
    protocol_error error;
    char *text = protocol_serialize(message, &length, &error);
    ck_assert_msg(text == NULL, "serialized %s", text);
    ck_assert_uint_eq(length, 12345);
    ck_assert_int_eq(error.code, code);
    ck_assert_str_eq(error.message, expected);
}

START_TEST(test_serialize_refuses_invalid_messages)
{
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_BIND, 0);
    assert_not_serialized(&message, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                          "bind.session: must be an integer from 1 to 2^63 - 1");

    protocol_message_init(&message, PROTOCOL_MESSAGE_PING, 0);
    message.body.ping.timestamp = UINT64_MAX;
    assert_not_serialized(&message, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                          "ping.timestamp: must be an integer from 0 to 2^63 - 1");

    protocol_message_init(&message, PROTOCOL_MESSAGE_LOGIN + 1, 0);
    assert_not_serialized(&message, PROTOCOL_ERROR_MALFORMED_MESSAGE,
                          "type: 14 is not a message type");

    protocol_message_init(&message, PROTOCOL_MESSAGE_SCHEMA, 1);
    assert_not_serialized(&message, PROTOCOL_ERROR_INTERNAL,
                          "schema.collections: cannot be written (out of memory, text that is "
                          "not UTF-8, or a value out of range)");

    protocol_message_init(&message, PROTOCOL_MESSAGE_UPLOAD, 1);
    changeset second = title_changeset(2, "b");
    changeset first = title_changeset(1, "a");
    ck_assert_int_eq(protocol_upload_add(&message.body.upload, &second), 0);
    ck_assert_int_eq(protocol_upload_add(&message.body.upload, &first), 0);
    assert_not_serialized(&message, PROTOCOL_ERROR_BAD_CHANGESET,
                          "upload.changesets[1].client_version: must be greater than the "
                          "previous one (2)");
    protocol_message_clear(&message);

    protocol_message_init(&message, PROTOCOL_MESSAGE_QUERY, 1);
    message.body.query.query_version = 1;
    ck_assert_int_eq(protocol_query_add(&message.body.query, "Task", "\xff", "TRUEPREDICATE"), 0);
    assert_not_serialized(&message, PROTOCOL_ERROR_INTERNAL,
                          "query.subscriptions: cannot be written (out of memory, text that is "
                          "not UTF-8, or a value out of range)");
    protocol_message_clear(&message);

    ck_assert_int_eq(protocol_error_init(&message, 1, PROTOCOL_ERROR_BAD_QUERY, "m"), 0);
    message.body.error.action = 17;
    assert_not_serialized(&message, PROTOCOL_ERROR_INTERNAL,
                          "error.action: cannot be written (out of memory, text that is not "
                          "UTF-8, or a value out of range)");
    protocol_message_clear(&message);
}
END_TEST

START_TEST(test_serialize_refuses_frames_over_the_limit)
{
    size_t size = PROTOCOL_MAX_MESSAGE_BYTES;
    char *title = malloc(size + 1);
    ck_assert_ptr_nonnull(title);
    memset(title, 'x', size);
    title[size] = '\0';
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_DOWNLOAD, 1);
    message.body.download.server_version = 1;
    changeset large = title_changeset(1, title);
    ck_assert_int_eq(protocol_download_add(&message.body.download, 1, &large), 0);
    free(title);
    size_t length;
    protocol_error error;
    ck_assert_ptr_null(protocol_serialize(&message, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_MESSAGE_TOO_LARGE);
    ck_assert_ptr_null(protocol_serialize_download(&message, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_MESSAGE_TOO_LARGE);
    ck_assert_uint_eq(error.session, 1);
    protocol_message_clear(&message);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The writer of server-built downloads                                      */

/* A fixed-seed generator (xorshift64), so that a failure repeats. */
static uint64_t random_state = 0x9e3779b97f4a7c15u;

static uint64_t random_next(void)
{
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return random_state;
}

static size_t random_below(size_t bound)
{
    return (size_t)(random_next() % bound);
}

/* Text that needs every kind of escape, and UTF-8 of 2 to 4 bytes; NUL
 * too when may_hold_nul (values may, names may not). */
static size_t random_text(char *out, size_t size, bool may_hold_nul)
{
    static const char *const pieces[] = {"a", "Z", "7", " ", ".", "\"", "\\", "/", "\n", "\t",
                                         "\r", "\b", "\f", "\x01", "\x1f", "\x7f", "\u00e9",
                                         "\u20ac", "\U0001F600", "$", "\0"};
    size_t pieces_usable = sizeof pieces / sizeof pieces[0] - (may_hold_nul ? 0 : 1);
    size_t length = 0;
    size_t count = 1 + random_below(12);
    for (size_t i = 0; i < count; i++) {
        const char *piece = pieces[random_below(pieces_usable)];
        size_t piece_length = piece[0] == '\0' ? 1 : strlen(piece);
        if (length + piece_length >= size)
            break;
        memcpy(out + length, piece, piece_length);
        length += piece_length;
    }
    out[length] = '\0';
    return length;
}

/* A field name: no '.', not empty, not starting with '$'. */
static void random_name(char *out, size_t size)
{
    size_t length = random_text(out, size - 1, false);
    for (size_t i = 0; i < length; i++)
        if (out[i] == '.' || out[i] == '$')
            out[i] = '_';
    if (length == 0)
        memcpy(out, "n", 2);
}

static double random_double(void)
{
    static const double notable[] = {0.0, -0.0, 0.1, 1.0, -2.5, 1e300, 1e-300, 1e21, 1e-7,
                                     123456789012345678.0, 5e-324, 1.7976931348623157e308};
    if (random_below(3) == 0)
        return notable[random_below(sizeof notable / sizeof notable[0])];
    for (;;) {
        uint64_t bits = random_next();
        double number;
        memcpy(&number, &bits, sizeof number);
        if (isfinite(number))
            return number;
    }
}

static json_t *random_value(int depth);

static json_t *random_container(int depth, bool document)
{
    json_t *container = document ? json_object() : json_array();
    size_t count = random_below(4);
    for (size_t i = 0; i < count; i++) {
        json_t *element = random_value(depth + 1);
        char name[64];
        random_name(name, sizeof name);
        if (document)
            ck_assert_int_eq(json_object_set_new(container, name, element), 0);
        else
            ck_assert_int_eq(json_array_append_new(container, element), 0);
    }
    return container;
}

/* A normalized value of any type: each wrapper, ints and dates on both
 * sides of where their text changes form, nested arrays and documents. */
static json_t *random_value(int depth)
{
    static const int64_t integers[] = {0, -1, 42, INT64_C(9007199254740992),
                                       INT64_C(9007199254740993), -INT64_C(9007199254740993),
                                       INT64_MAX, INT64_MIN};
    static const int64_t dates[] = {0, 1714560000000, 1714560000123, -1, 253402300800000,
                                    INT64_MIN};
    uint8_t bytes[VALUE_UUID_SIZE];
    char text[64];
    size_t kind = random_below(depth < 3 ? 14 : 11);
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)random_next();
    switch (kind) {
    case 0: return json_null();
    case 1: return json_boolean(random_below(2));
    case 2: return json_integer(integers[random_below(sizeof integers / sizeof integers[0])]);
    case 3: return json_integer((json_int_t)random_next());
    case 4: return value_new_double(random_double());
    case 5: return value_new_double(random_below(2) ? INFINITY : NAN);
    case 6: return json_stringn(text, random_text(text, sizeof text, true));
    case 7: return value_new_object_id(bytes);
    case 8: return value_new_date(dates[random_below(sizeof dates / sizeof dates[0])]);
    case 9: return random_below(2) ? value_new_uuid(bytes) : value_new_decimal("-1.5E+3");
    case 10: return value_new_binary(bytes, random_below(sizeof bytes), 0);
    case 11: return json_object(); /* the empty document is a value */
    default: return random_container(depth, kind == 12);
    }
}

static json_t *random_id(void)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    char text[64];
    switch (random_below(3)) {
    case 0:
        return json_integer((json_int_t)random_next());
    case 1:
        for (size_t i = 0; i < sizeof bytes; i++)
            bytes[i] = (uint8_t)random_next();
        return value_new_object_id(bytes);
    default:
        return json_stringn(text, random_text(text, sizeof text, true));
    }
}

static void random_instruction(changeset *built)
{
    static const char *const collections[] = {"Task", "Item \u00e9", "a\"b\\c"};
    changeset_operation operation = (changeset_operation)random_below(4);
    json_t *id = random_id();
    char path[200] = "";
    json_t *value = operation == CHANGESET_SET ? random_value(1) : NULL;
    if (value != NULL && json_object_size(value) > 0 &&
        value_type_of(value) == VALUE_DOCUMENT) { /* sent field by field, or in an array */
        json_t *array = json_array();
        ck_assert_int_eq(json_array_append_new(array, value), 0);
        value = array;
    }
    if (operation == CHANGESET_SET || operation == CHANGESET_UNSET) {
        size_t depth = 1 + random_below(3);
        for (size_t level = 0; level < depth; level++) {
            char name[48];
            random_name(name, sizeof name);
            if (level > 0)
                strcat(path, ".");
            strcat(path, name);
        }
    }
    char message[256];
    int result = changeset_append(built, operation, collections[random_below(3)], id,
                                  operation >= CHANGESET_SET ? path : NULL, value, message,
                                  sizeof message);
    ck_assert_msg(result == 0, "%s", message);
    json_decref(id);
    json_decref(value);
}

static void assert_download_writers_agree(const protocol_message *message)
{
    size_t checked_length, fast_length;
    protocol_error error;
    char *checked = protocol_serialize(message, &checked_length, &error);
    ck_assert_msg(checked != NULL, "%s", error.message);
    char *fast = protocol_serialize_download(message, &fast_length, &error);
    ck_assert_msg(fast != NULL, "%s", error.message);
    ck_assert_uint_eq(checked_length, fast_length);
    ck_assert_msg(memcmp(checked, fast, fast_length) == 0, "\n%s\n%s", checked, fast);
    ck_assert_int_eq(fast[fast_length], '\0');
    protocol_message parsed;
    ck_assert_int_eq(protocol_parse(fast, fast_length, &parsed, &error), 0);
    protocol_message_clear(&parsed);
    free(checked);
    free(fast);
}

/* The writer of server-built downloads writes the very bytes the checked
 * one does, for random downloads with every kind of value; the frames
 * parse back; other messages go through the checked writer. */
START_TEST(test_download_writer_matches_serialize)
{
    for (uint64_t round = 0; round < 300; round++) {
        protocol_message message;
        protocol_message_init(&message, PROTOCOL_MESSAGE_DOWNLOAD, 1 + random_below(1000));
        protocol_download_body *body = &message.body.download;
        body->server_version = 100 + round;
        body->last_integrated_client_version = random_next() >> 1;
        body->query_version = random_below(5);
        body->last_in_batch = random_below(2);
        body->progress_estimate = round % 7 == 0 ? 1.0 : (double)random_below(1000) / 999.0;
        size_t count = random_below(4);
        for (uint64_t index = 0; index < count; index++) {
            changeset added = {.origin = random_below(3),
                               .client_version = random_below(2) ? random_next() >> 1 : 0,
                               .timestamp = (int64_t)(random_next() >> 1)};
            size_t instructions = random_below(6);
            for (size_t i = 0; i < instructions; i++)
                random_instruction(&added);
            ck_assert_int_eq(protocol_download_add(body, 10 + index + round, &added), 0);
        }
        size_t access_count = random_below(3);
        for (size_t i = 0; i < access_count; i++) {
            json_t *id = random_id();
            ck_assert_int_eq(
                protocol_download_add_access(body, "Item \u00e9", id, random_below(2)), 0);
            json_decref(id);
        }
        assert_download_writers_agree(&message);
        protocol_message_clear(&message);
    }
    protocol_message ping;
    protocol_message_init(&ping, PROTOCOL_MESSAGE_PING, 0);
    size_t length;
    protocol_error error;
    char *frame = protocol_serialize_download(&ping, &length, &error);
    ck_assert_str_eq(frame, "{\"type\":\"ping\",\"timestamp\":0}");
    free(frame);
}
END_TEST

/* What the reader would refuse is refused without it. */
START_TEST(test_download_writer_refuses_what_cannot_be_read)
{
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_DOWNLOAD, 1);
    protocol_download_body *body = &message.body.download;
    body->server_version = 5;
    changeset added = title_changeset(1, "title");
    ck_assert_int_eq(protocol_download_add(body, 6, &added), 0);
    size_t length;
    protocol_error error;
    ck_assert_ptr_null(protocol_serialize_download(&message, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_BAD_CHANGESET);
    body->server_version = 6;
    body->progress_estimate = 1.5;
    ck_assert_ptr_null(protocol_serialize_download(&message, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_INTERNAL);
    ck_assert_str_eq(error.message, "download.progress_estimate: cannot be written (a value out "
                                    "of range)");
    body->progress_estimate = 1.0;
    body->changesets[0].changeset.origin = UINT64_MAX;
    ck_assert_ptr_null(protocol_serialize_download(&message, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_INTERNAL);
    body->changesets[0].changeset.origin = 7;
    char *frame = protocol_serialize_download(&message, &length, &error);
    ck_assert_ptr_nonnull(frame);
    free(frame);
    protocol_message_clear(&message);
}
END_TEST

/* A download written as it is built is byte for byte the download of the
 * same replacements built as a changeset; an empty writer writes
 * "changesets": []; the writer is empty again after each frame. */
START_TEST(test_written_download_matches_built_one)
{
    protocol_download_writer *writer;
    ck_assert_int_eq(protocol_download_writer_new(&writer), 0);
    for (uint64_t round = 0; round < 200; round++) {
        protocol_message built, header;
        protocol_message_init(&built, PROTOCOL_MESSAGE_DOWNLOAD, 1 + round);
        built.body.download.server_version = 50 + round;
        built.body.download.progress_estimate = (double)random_below(1000) / 999.0;
        built.body.download.last_in_batch = random_below(2);
        changeset replacements = {.timestamp = (int64_t)(random_next() >> 1)};
        size_t objects = random_below(4);
        char message[256];
        for (size_t i = 0; i < objects; i++) {
            json_t *id = random_id();
            json_t *document = random_below(4) == 0 ? NULL : random_container(0, true);
            const char *collection = i % 2 ? "Task" : "Item \u00e9";
            ck_assert_int_eq(changeset_replace(collection, id, document, &replacements, message,
                                               sizeof message),
                             0);
            ck_assert_int_eq(changeset_replace_visit(collection, id, document,
                                                     protocol_download_writer_add, writer,
                                                     message, sizeof message),
                             0);
            json_decref(id);
            json_decref(document);
        }
        ck_assert_uint_eq(protocol_download_writer_instruction_count(writer), replacements.count);
        header = built;
        int64_t timestamp = replacements.timestamp;
        if (replacements.count > 0)
            ck_assert_int_eq(protocol_download_add(&built.body.download,
                                                   built.body.download.server_version,
                                                   &replacements),
                             0);
        json_t *access_id = random_id();
        ck_assert_int_eq(protocol_download_add_access(&built.body.download, "Task", access_id,
                                                      false),
                         0);
        ck_assert_int_eq(protocol_download_add_access(&header.body.download, "Task", access_id,
                                                      false),
                         0);
        json_decref(access_id);
        size_t built_length, written_length;
        protocol_error error;
        char *expected = protocol_serialize_download(&built, &built_length, &error);
        ck_assert_msg(expected != NULL, "%s", error.message);
        char *written = protocol_download_writer_finish(
            writer, &header, header.body.download.server_version, timestamp, &written_length,
            &error);
        ck_assert_msg(written != NULL, "%s", error.message);
        ck_assert_msg(built_length == written_length && memcmp(expected, written, built_length) == 0,
                      "\n%s\n%s", expected, written);
        ck_assert_uint_eq(protocol_download_writer_instruction_count(writer), 0);
        free(expected);
        free(written);
        protocol_message_clear(&built);
        protocol_message_clear(&header);
        changeset_clear(&replacements);
    }
    protocol_download_writer_free(writer);
}
END_TEST

/* A written download follows the rules of any other: its changeset may
 * not pass the message's version, and the message brings no changesets. */
START_TEST(test_written_download_refusals)
{
    protocol_download_writer *writer;
    ck_assert_int_eq(protocol_download_writer_new(&writer), 0);
    json_t *id = json_integer(5);
    json_t *document = json_pack("{s:s}", "title", "milk");
    char message[256];
    ck_assert_int_eq(changeset_replace_visit("Task", id, document, protocol_download_writer_add,
                                             writer, message, sizeof message),
                     0);
    ck_assert_uint_eq(protocol_download_writer_instruction_count(writer), 3);
    protocol_message header;
    protocol_message_init(&header, PROTOCOL_MESSAGE_DOWNLOAD, 1);
    header.body.download.server_version = 5;
    size_t length;
    protocol_error error;
    ck_assert_ptr_null(protocol_download_writer_finish(writer, &header, 6, 0, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_BAD_CHANGESET);
    ck_assert_uint_eq(protocol_download_writer_instruction_count(writer), 0);
    changeset other = title_changeset(1, "title");
    ck_assert_int_eq(protocol_download_add(&header.body.download, 5, &other), 0);
    ck_assert_ptr_null(protocol_download_writer_finish(writer, &header, 5, 0, &length, &error));
    ck_assert_int_eq(error.code, PROTOCOL_ERROR_INTERNAL);
    json_t *bad = json_pack("{s:i}", "a.b", 1);
    ck_assert_int_eq(changeset_replace_visit("Task", id, bad, protocol_download_writer_add,
                                             writer, message, sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "field name \"a.b\" holds '.' or NUL, which a path cannot spell");
    json_decref(bad);
    json_decref(id);
    json_decref(document);
    protocol_message_clear(&header);
    protocol_download_writer_free(writer);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("protocol");

    TCase *round_trip = tcase_create("round_trip");
    tcase_add_test(round_trip, test_every_message_type_round_trips);
    tcase_add_test(round_trip, test_members_in_any_order_and_spacing);
    tcase_add_test(round_trip, test_parsed_fields);
    tcase_add_test(round_trip, test_built_messages_round_trip);
    tcase_add_test(round_trip, test_error_init);
    tcase_add_test(round_trip, test_names_and_senders);
    suite_add_tcase(suite, round_trip);

    TCase *refused = tcase_create("refused");
    tcase_add_test(refused, test_refused_frames);
    tcase_add_test(refused, test_empty_frame);
    tcase_add_test(refused, test_invalid_utf8);
    tcase_add_test(refused, test_nul_byte_outside_strings);
    tcase_add_test(refused, test_frame_size_limit);
    tcase_add_test(refused, test_nesting_limit);
    tcase_add_test(refused, test_server_document_depth);
    tcase_add_test(refused, test_refusal_names_the_session);
    suite_add_tcase(suite, refused);

    TCase *serialize_checks = tcase_create("serialize");
    tcase_add_test(serialize_checks, test_serialize_refuses_invalid_messages);
    tcase_add_test(serialize_checks, test_serialize_refuses_frames_over_the_limit);
    tcase_add_test(serialize_checks, test_download_writer_matches_serialize);
    tcase_add_test(serialize_checks, test_download_writer_refuses_what_cannot_be_read);
    tcase_add_test(serialize_checks, test_written_download_matches_built_one);
    tcase_add_test(serialize_checks, test_written_download_refusals);
    suite_add_tcase(suite, serialize_checks);
    return suite;
}

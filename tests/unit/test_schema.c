/*
 * Unit tests for schema.c: the exported App Services schemas, every type
 * and its messages, numbers converted to the asked type, paths into
 * embedded documents and arrays, and malformed schemas.
 */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/schema.h"
#include "realmfs/value.h"

/* Parses JSON written with single quotes for readability ("{'a': 1}"), so
 * test texts must not hold a quote of their own. */
static json_t *load(const char *text)
{
    char *double_quoted = strdup(text);
    ck_assert_ptr_nonnull(double_quoted);
    for (char *c = double_quoted; *c != '\0'; c++) {
        if (*c == '\'')
            *c = '"';
    }
    json_error_t error;
    json_t *value = json_loads(double_quoted, JSON_DECODE_ANY, &error);
    ck_assert_msg(value != NULL, "bad test JSON %s: %s", text, error.text);
    free(double_quoted);
    return value;
}

static void assert_schema_ok(const char *schema_text)
{
    json_t *schema = load(schema_text);
    char message[256];
    int result = schema_check(schema, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %s", schema_text, message);
    ck_assert_str_eq(message, "");
    json_decref(schema);
}

static void assert_schema_error(const char *schema_text, const char *expected)
{
    json_t *schema = load(schema_text);
    char message[256];
    ck_assert_int_eq(schema_check(schema, message, sizeof message), -EINVAL);
    ck_assert_str_eq(message, expected);
    json_decref(schema);
}

/* Validates document_text against a schema that must pass schema_check,
 * expects the result and message, and returns the (possibly converted)
 * document. */
static json_t *validate(const char *schema_text, const char *document_text, int expected_result,
                        const char *expected_message)
{
    json_t *schema = load(schema_text);
    char message[256];
    ck_assert_msg(schema_check(schema, message, sizeof message) == 0, "%s", message);
    json_t *document = load(document_text);
    ck_assert_int_eq(schema_validate_document(schema, document, message, sizeof message),
                     expected_result);
    ck_assert_str_eq(message, expected_message);
    json_decref(schema);
    return document;
}

static void assert_valid(const char *schema_text, const char *document_text)
{
    json_decref(validate(schema_text, document_text, 0, ""));
}

static void assert_invalid(const char *schema_text, const char *document_text, const char *expected)
{
    json_decref(validate(schema_text, document_text, -EINVAL, expected));
}

/* The document after validation equals expected_text exactly (json_equal:
 * 5 and 5.0 differ). */
static void assert_converted(const char *schema_text, const char *document_text,
                             const char *expected_text)
{
    json_t *document = validate(schema_text, document_text, 0, "");
    json_t *expected = load(expected_text);
    char *actual = json_dumps(document, JSON_ENCODE_ANY);
    ck_assert_msg(json_equal(document, expected), "got %s, expected %s", actual, expected_text);
    free(actual);
    json_decref(expected);
    json_decref(document);
}

/* The sync-todo template's Item, as exported. */
static const char ITEM_SCHEMA[] =
    "{'bsonType': 'object', 'title': 'Item',"
    " 'properties': {'_id': {'bsonType': 'objectId'}, 'isComplete': {'bsonType': 'bool'},"
    "                'owner_id': {'bsonType': 'string'}, 'summary': {'bsonType': 'string'}},"
    " 'required': ['_id', 'owner_id', 'summary', 'isComplete']}";

static const char PERSON_SCHEMA[] =
    "{'bsonType': 'object', 'title': 'Person',"
    " 'properties': {"
    "   '_id': {'bsonType': 'objectId'},"
    "   'name': {'bsonType': 'string'},"
    "   'age': {'bsonType': 'int'},"
    "   'tags': {'bsonType': 'array', 'items': {'bsonType': 'string'}},"
    "   'address': {'bsonType': 'object', 'required': ['city'],"
    "               'properties': {'city': {'bsonType': 'string'}, 'zip': {'bsonType': 'int'}}},"
    "   'pets': {'bsonType': 'array', 'items': {'bsonType': 'object', 'required': ['name'],"
    "            'properties': {'name': {'bsonType': 'string'}}}},"
    "   'matrix': {'bsonType': 'array',"
    "              'items': {'bsonType': 'array', 'items': {'bsonType': 'double'}}}},"
    " 'required': ['_id', 'name']}";

/* A value of an exported property's type, to build a full document. */
static json_t *sample_value(const json_t *property_schema)
{
    const char *type = json_string_value(json_object_get(property_schema, "bsonType"));
    ck_assert_ptr_nonnull(type);
    if (strcmp(type, "objectId") == 0)
        return load("{'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}");
    if (strcmp(type, "string") == 0)
        return json_string("text");
    if (strcmp(type, "bool") == 0)
        return json_true();
    if (strcmp(type, "array") == 0)
        return json_pack("[o]", sample_value(json_object_get(property_schema, "items")));
    ck_abort_msg("no sample for bsonType %s", type);
    return NULL;
}

static void assert_exported_schema_works(const char *path)
{
    json_error_t error;
    json_t *schema = json_load_file(path, 0, &error);
    ck_assert_msg(schema != NULL, "%s: %s", path, error.text);
    char message[256];
    int result = schema_check(schema, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %s", path, message);

    json_t *document = json_object();
    const char *name;
    json_t *property;
    json_object_foreach(json_object_get(schema, "properties"), name, property)
        ck_assert_int_eq(json_object_set_new(document, name, sample_value(property)), 0);
    result = schema_validate_document(schema, document, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %s", path, message);
    json_decref(document);
    json_decref(schema);
}

START_TEST(test_exported_schemas)
{
    const char *exports = getenv("REALMFS_EXPORTS");
    if (exports == NULL) {
        printf("# skipped: REALMFS_EXPORTS is not set\n");
        fflush(stdout);
        return;
    }
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/*/data_sources/mongodb-atlas/*/*/schema.json", exports);
    glob_t found;
    ck_assert_msg(glob(pattern, 0, NULL, &found) == 0, "no schema.json under %s", exports);
    for (size_t i = 0; i < found.gl_pathc; i++)
        assert_exported_schema_works(found.gl_pathv[i]);
    globfree(&found);
}
END_TEST

START_TEST(test_item_documents)
{
    assert_valid(ITEM_SCHEMA, "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': 'u1',"
                              " 'summary': 'Buy milk', 'isComplete': false}");
    assert_invalid(ITEM_SCHEMA,
                   "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': 'u1',"
                   " 'summary': 'Buy milk', 'isComplete': 'yes'}",
                   "isComplete: expected bool, found string");
    assert_invalid(ITEM_SCHEMA, "{'_id': 'abc', 'owner_id': 'u1', 'summary': 's', 'isComplete': true}",
                   "_id: expected objectId, found string");
    assert_invalid(ITEM_SCHEMA,
                   "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': 'u1',"
                   " 'isComplete': true}",
                   "summary: required field is missing");
    assert_invalid(ITEM_SCHEMA,
                   "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': 'u1',"
                   " 'summary': 's', 'isComplete': true, 'colour': 'red'}",
                   "colour: field not in schema");
    assert_invalid(ITEM_SCHEMA,
                   "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': null,"
                   " 'summary': 's', 'isComplete': true}",
                   "owner_id: expected string, found null");
}
END_TEST

/* A misspelt field is reported as itself, not as the field it misses. */
START_TEST(test_unknown_field_reported_before_missing_one)
{
    assert_invalid(ITEM_SCHEMA,
                   "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': 'u1',"
                   " 'sumary': 's', 'isComplete': true}",
                   "sumary: field not in schema");
}
END_TEST

START_TEST(test_optional_fields_may_be_null)
{
    assert_valid(PERSON_SCHEMA, "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'name': 'Ann',"
                                " 'age': null, 'tags': null, 'address': null}");
    assert_valid(PERSON_SCHEMA, "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'name': 'Ann'}");
    assert_invalid(PERSON_SCHEMA, "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'name': 'Ann',"
                                  " 'tags': ['a', null]}",
                   "tags[1]: expected string, found null");
}
END_TEST

START_TEST(test_paths_into_documents_and_arrays)
{
    const char *prefix = "{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'name': 'Ann', ";
    static const struct {
        const char *fields;
        const char *message;
    } cases[] = {
        {"'tags': ['a', 'b', 5]}", "tags[2]: expected string, found long"},
        {"'tags': 'a'}", "tags: expected array, found string"},
        {"'address': {'zip': 12345}}", "address.city: required field is missing"},
        {"'address': {'city': 'Oslo', 'colour': 'red'}}", "address.colour: field not in schema"},
        {"'address': {'city': 'Oslo', 'zip': '0150'}}", "address.zip: expected int, found string"},
        {"'address': ['Oslo']}", "address: expected object, found array"},
        {"'pets': [{'name': 'Rex'}, {}]}", "pets[1].name: required field is missing"},
        {"'pets': [{'name': 'Rex', 'age': 3}]}", "pets[0].age: field not in schema"},
        {"'matrix': [[1.5], ['x']]}", "matrix[1][0]: expected double, found string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char document[512];
        snprintf(document, sizeof document, "%s%s", prefix, cases[i].fields);
        assert_invalid(PERSON_SCHEMA, document, cases[i].message);
    }
    char document[512];
    snprintf(document, sizeof document, "%s%s", prefix,
             "'age': 41, 'tags': [], 'address': {'city': 'Oslo'}, 'pets': [{'name': 'Rex'}],"
             " 'matrix': [[], [0.5]]}");
    assert_valid(PERSON_SCHEMA, document);
}
END_TEST

START_TEST(test_every_type)
{
    static const struct {
        const char *value;
        const char *bson_type;
    } cases[] = {
        {"{'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}", "objectId"},
        {"'text'", "string"},
        {"7", "long"},
        {"1.5", "double"},
        {"{'$numberDouble': 'NaN'}", "double"},
        {"{'$numberDecimal': '1.5'}", "decimal"},
        {"true", "bool"},
        {"{'$date': 1714564800000}", "date"},
        {"{'$uuid': '12345678-9abc-def0-1234-56789abcdef0'}", "uuid"},
        {"{'$binary': {'base64': 'AAE=', 'subType': '00'}}", "binData"},
        {"{'a': 1}", "object"},
        {"{}", "object"},
        {"[1, 'a']", "array"},
        {"null", "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char document[256], schema[256], other_schema[256], message[256];
        const char *other_type = strcmp(cases[i].bson_type, "string") == 0 ? "bool" : "string";
        snprintf(document, sizeof document, "{'v': %s}", cases[i].value);
        snprintf(schema, sizeof schema, "{'properties': {'v': {'bsonType': '%s'}}, 'required': ['v']}",
                 cases[i].bson_type);
        snprintf(other_schema, sizeof other_schema,
                 "{'properties': {'v': {'bsonType': '%s'}}, 'required': ['v']}", other_type);
        snprintf(message, sizeof message, "v: expected %s, found %s", other_type,
                 cases[i].bson_type);
        assert_valid(schema, document);
        assert_valid("{'properties': {'v': {'bsonType': 'mixed'}}, 'required': ['v']}", document);
        assert_valid("{'properties': {'v': {}}, 'required': ['v']}", document);
        assert_invalid(other_schema, document, message);
    }
}
END_TEST

START_TEST(test_int_range)
{
    const char *schema = "{'properties': {'n': {'bsonType': 'int'}}}";
    assert_converted(schema, "{'n': 2147483647}", "{'n': 2147483647}");
    assert_converted(schema, "{'n': -2147483648}", "{'n': -2147483648}");
    assert_invalid(schema, "{'n': 2147483648}", "n: expected int, found long");
    assert_invalid(schema, "{'n': -2147483649}", "n: expected int, found long");
    assert_invalid(schema, "{'n': 5.0}", "n: expected int, found double");
    assert_invalid("{'properties': {'n': {'bsonType': 'long'}}}", "{'n': 5.0}",
                   "n: expected long, found double");
    assert_converted("{'properties': {'n': {'bsonType': 'long'}}}", "{'n': 9223372036854775807}",
                     "{'n': 9223372036854775807}");
    /* A long that does not fit an int takes the next type offered. */
    assert_converted("{'properties': {'n': {'bsonType': ['int', 'double']}}}", "{'n': 2147483648}",
                     "{'n': 2147483648.0}");
    assert_converted("{'properties': {'n': {'bsonType': ['int', 'double']}}}", "{'n': 7}",
                     "{'n': 7}");
}
END_TEST

START_TEST(test_integers_take_the_asked_number_type)
{
    assert_converted("{'properties': {'n': {'bsonType': 'double'}}}", "{'n': 5}", "{'n': 5.0}");
    assert_converted("{'properties': {'n': {'bsonType': 'double'}}}", "{'n': -3}", "{'n': -3.0}");
    assert_converted("{'properties': {'n': {'bsonType': 'decimal'}}}", "{'n': 5}",
                     "{'n': {'$numberDecimal': '5'}}");
    assert_converted("{'properties': {'n': {'bsonType': 'decimal'}}}",
                     "{'n': -9223372036854775808}",
                     "{'n': {'$numberDecimal': '-9223372036854775808'}}");
    assert_converted("{'properties': {'n': {'bsonType': 'number'}}}", "{'n': 5}", "{'n': 5}");
    assert_converted("{'properties': {'n': {'bsonType': ['double', 'decimal']}}}", "{'n': 5}",
                     "{'n': 5.0}");
    assert_converted("{'properties': {'n': {'bsonType': ['decimal', 'long']}}}", "{'n': 5}",
                     "{'n': 5}");
    assert_converted("{'properties': {'n': {'bsonType': 'array', 'items': {'bsonType': 'double'}}}}",
                     "{'n': [1, 2.5, -7]}", "{'n': [1.0, 2.5, -7.0]}");
    assert_converted("{'properties': {'a': {'properties': {'b': {'bsonType': 'double'}}}}}",
                     "{'a': {'b': 1}}", "{'a': {'b': 1.0}}");
    assert_converted("{'properties': {'m': {'bsonType': 'array', 'items':"
                     " {'bsonType': 'array', 'items': {'bsonType': 'decimal'}}}}}",
                     "{'m': [[1], [2, 3]]}",
                     "{'m': [[{'$numberDecimal': '1'}], [{'$numberDecimal': '2'},"
                     " {'$numberDecimal': '3'}]]}");
    /* Field order is kept. */
    json_t *document = validate("{'properties': {'a': {}, 'b': {'bsonType': 'double'}, 'c': {}}}",
                                "{'a': 1, 'b': 2, 'c': 3}", 0, "");
    char *text = json_dumps(document, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"a\":1,\"b\":2.0,\"c\":3}");
    free(text);
    json_decref(document);
}
END_TEST

START_TEST(test_doubles_become_decimal_text)
{
    const char *schema = "{'properties': {'n': {'bsonType': 'decimal'}}}";
    static const struct {
        const char *value;
        const char *decimal;
    } cases[] = {
        {"0.1", "0.1"},
        {"5.5", "5.5"},
        {"1.0", "1"},
        {"-0.0", "-0"},
        {"1e300", "1e+300"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"123456789012345678.0", "1.2345678901234568e+17"},
        {"{'$numberDouble': 'Infinity'}", "Infinity"},
        {"{'$numberDouble': '-Infinity'}", "-Infinity"},
        {"{'$numberDouble': 'NaN'}", "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char document[128], expected[128];
        snprintf(document, sizeof document, "{'n': %s}", cases[i].value);
        snprintf(expected, sizeof expected, "{'n': {'$numberDecimal': '%s'}}", cases[i].decimal);
        assert_converted(schema, document, expected);
    }
    assert_converted("{'properties': {'n': {'bsonType': ['decimal', 'double']}}}", "{'n': 0.1}",
                     "{'n': 0.1}");
    assert_converted("{'properties': {'n': {'bsonType': 'number'}}}", "{'n': 0.1}", "{'n': 0.1}");
}
END_TEST

START_TEST(test_decimals)
{
    assert_valid("{'properties': {'n': {'bsonType': 'decimal'}}}", "{'n': {'$numberDecimal': '1.5'}}");
    assert_valid("{'properties': {'n': {'bsonType': 'number'}}}", "{'n': {'$numberDecimal': '1.5'}}");
    assert_invalid("{'properties': {'n': {'bsonType': 'double'}}}",
                   "{'n': {'$numberDecimal': '1.5'}}", "n: expected double, found decimal");
    assert_invalid("{'properties': {'n': {'bsonType': 'long'}}}",
                   "{'n': {'$numberDecimal': '1'}}", "n: expected long, found decimal");
}
END_TEST

START_TEST(test_json_schema_type_alias)
{
    assert_converted("{'properties': {'n': {'type': 'integer'}}}", "{'n': 5}", "{'n': 5}");
    assert_invalid("{'properties': {'n': {'type': 'integer'}}}", "{'n': 1.5}",
                   "n: expected integer, found double");
    assert_valid("{'properties': {'b': {'type': 'boolean'}}}", "{'b': true}");
    assert_invalid("{'properties': {'b': {'type': 'boolean'}}}", "{'b': 1}",
                   "b: expected boolean, found long");
    assert_converted("{'properties': {'n': {'type': 'number'}}}", "{'n': 5}", "{'n': 5}");
    assert_valid("{'properties': {'n': {'type': 'number'}}}", "{'n': {'$numberDecimal': '2'}}");
    assert_valid("{'properties': {'s': {'type': 'string'}, 'z': {'type': 'null'},"
                 " 'a': {'type': 'array', 'items': {'type': 'string'}}}}",
                 "{'s': 'x', 'z': null, 'a': ['y']}");
    assert_invalid("{'type': 'object', 'properties': {'o': {'type': 'object',"
                   " 'properties': {'x': {'type': 'string'}}}}}",
                   "{'o': {'x': 'a', 'y': 'b'}}", "o.y: field not in schema");
    assert_invalid("{'properties': {'v': {'type': ['string', 'null']}}, 'required': ['v']}",
                   "{'v': 5}", "v: expected string or null, found long");
}
END_TEST

START_TEST(test_expected_lists_name_every_type)
{
    assert_invalid("{'properties': {'v': {'bsonType': ['string', 'null']}}, 'required': ['v']}",
                   "{'v': 5}", "v: expected string or null, found long");
    assert_invalid("{'properties': {'v': {'bsonType': ['int', 'long', 'double']}}}", "{'v': 'x'}",
                   "v: expected int, long or double, found string");
    assert_valid("{'properties': {'v': {'bsonType': ['string', 'null']}}, 'required': ['v']}",
                 "{'v': null}");
}
END_TEST

START_TEST(test_open_schemas)
{
    assert_valid("{'bsonType': 'object'}", "{'anything': [1, {'b': 2}], 'else': null}");
    assert_valid("{}", "{'a': 1}");
    assert_valid("{'properties': {'m': {'bsonType': 'mixed'}}}",
                 "{'m': {'deep': {'x': [1, 'y', {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}]}}}");
    /* properties apply to a document even without a bsonType. */
    assert_invalid("{'properties': {'a': {}}}", "{'b': 1}", "b: field not in schema");
}
END_TEST

/* A failed validation leaves the document exactly as it was. */
START_TEST(test_failure_changes_nothing)
{
    json_t *document = validate("{'properties': {'a': {'bsonType': 'double'},"
                                " 'l': {'bsonType': 'array', 'items': {'bsonType': 'double'}},"
                                " 'b': {'bsonType': 'bool'}}}",
                                "{'a': 1, 'l': [2, 3], 'b': 'x'}", -EINVAL,
                                "b: expected bool, found string");
    json_t *unchanged = load("{'a': 1, 'l': [2, 3], 'b': 'x'}");
    ck_assert(json_equal(document, unchanged));
    json_decref(unchanged);
    json_decref(document);
}
END_TEST

START_TEST(test_root_problems)
{
    assert_invalid("{'bsonType': 'array'}", "{}", "(root): expected array, found object");
    assert_invalid("{}", "{'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}", "(root): not a document");

    json_t *schema = load("{}");
    json_t *number = json_integer(5);
    char message[256];
    ck_assert_int_eq(schema_validate_document(schema, number, message, sizeof message), -EINVAL);
    ck_assert_str_eq(message, "(root): not a document");
    json_decref(number);
    json_decref(schema);
}
END_TEST

START_TEST(test_short_message_buffers)
{
    json_t *schema = load(ITEM_SCHEMA);
    json_t *document = load("{'_id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}, 'owner_id': null,"
                            " 'summary': 's', 'isComplete': true}");
    char message[12];
    ck_assert_int_eq(schema_validate_document(schema, document, message, sizeof message), -EINVAL);
    ck_assert_str_eq(message, "owner_id: e");
    ck_assert_int_eq(schema_validate_document(schema, document, message, 5), -EINVAL);
    ck_assert_str_eq(message, "owne");
    ck_assert_int_eq(schema_validate_document(schema, document, NULL, 0), -EINVAL);
    ck_assert_int_eq(schema_check(document, NULL, 0), -EINVAL);
    json_decref(document);
    json_decref(schema);
}
END_TEST

/* A path longer than the walk keeps is cut short, never overflowing. */
START_TEST(test_very_deep_paths)
{
    enum { DEPTH = 60 };
    json_t *schema = json_pack("{s:s}", "bsonType", "string");
    json_t *document = json_integer(1);
    char full_path[DEPTH * 11 + 1] = "";
    for (int level = 0; level < DEPTH; level++) {
        schema = json_pack("{s:{s:o}}", "properties", "abcdefghij", schema);
        document = json_pack("{s:o}", "abcdefghij", document);
        ck_assert_ptr_nonnull(schema);
        ck_assert_ptr_nonnull(document);
        strcat(full_path, level == 0 ? "abcdefghij" : ".abcdefghij");
    }
    char message[1024];
    ck_assert_int_eq(schema_check(schema, message, sizeof message), 0);
    ck_assert_int_eq(schema_validate_document(schema, document, message, sizeof message), -EINVAL);
    char expected[1024];
    snprintf(expected, sizeof expected, "%.511s: expected string, found long", full_path);
    ck_assert_str_eq(message, expected);
    json_decref(document);
    json_decref(schema);
}
END_TEST

START_TEST(test_well_formed_schemas)
{
    static const char *const bson_types[] = {
        "objectId", "string", "int", "long", "double", "decimal", "number", "bool",
        "date", "uuid", "binData", "object", "array", "null", "mixed",
    };
    static const char *const json_types[] = {
        "object", "array", "string", "number", "boolean", "null", "integer",
    };
    char schema[128];
    for (size_t i = 0; i < sizeof bson_types / sizeof bson_types[0]; i++) {
        snprintf(schema, sizeof schema, "{'bsonType': '%s'}", bson_types[i]);
        assert_schema_ok(schema);
    }
    for (size_t i = 0; i < sizeof json_types / sizeof json_types[0]; i++) {
        snprintf(schema, sizeof schema, "{'type': ['%s']}", json_types[i]);
        assert_schema_ok(schema);
    }
    assert_schema_ok(ITEM_SCHEMA);
    assert_schema_ok(PERSON_SCHEMA);
    assert_schema_ok("{}");
    assert_schema_ok("{'required': ['a']}");
    assert_schema_ok("{'title': 'T', 'description': 'what it is', 'bsonType': ['string', 'null']}");
}
END_TEST

START_TEST(test_malformed_schemas)
{
    assert_schema_error("{'properties': {'tags': {'bsonType': 'array', 'items': {'bsonType': 'strng'}}}}",
                        "properties.tags.items: unknown bsonType \"strng\"");
    assert_schema_error("{'bsonType': 'boolean'}", "(root): unknown bsonType \"boolean\"");
    assert_schema_error("{'bsonType': ['string', 'text']}", "(root): unknown bsonType \"text\"");
    assert_schema_error("{'bsonType': 5}",
                        "(root): bsonType must be a name or a non-empty array of names");
    assert_schema_error("{'bsonType': []}",
                        "(root): bsonType must be a name or a non-empty array of names");
    assert_schema_error("{'bsonType': ['string', 5]}",
                        "(root): bsonType must be a name or a non-empty array of names");
    assert_schema_error("{'type': 'float'}", "(root): unknown type \"float\"");
    assert_schema_error("{'type': 'bool'}", "(root): unknown type \"bool\"");
    assert_schema_error("{'type': {}}", "(root): type must be a name or a non-empty array of names");
    assert_schema_error("{'bsonType': 'string', 'type': 'string'}",
                        "(root): bsonType and type cannot both be given");
    assert_schema_error("{'type': 'string', 'bsonType': 'string'}",
                        "(root): bsonType and type cannot both be given");
    assert_schema_error("{'properties': []}", "(root): properties must be an object");
    assert_schema_error("{'properties': {'a': 'string'}}", "properties.a: schema must be an object");
    assert_schema_error("{'properties': {'a': {'properties': {'b': {'additionalProperties': false}}}}}",
                        "properties.a.properties.b: unsupported keyword \"additionalProperties\"");
    assert_schema_error("{'required': 'a'}", "(root): required must be an array of field names");
    assert_schema_error("{'required': [1]}", "(root): required must be an array of field names");
    assert_schema_error("{'properties': {'a': {}}, 'required': ['a', 'b']}",
                        "(root): required field \"b\" is not in properties");
    assert_schema_error("{'items': 'string'}", "items: schema must be an object");
    assert_schema_error("{'items': [{}]}", "items: schema must be an object");
    assert_schema_error("{'title': 5}", "(root): title must be a string");
    assert_schema_error("{'description': null}", "(root): description must be a string");
    assert_schema_error("{'bsonType': 'int', 'minimum': 1}", "(root): unsupported keyword \"minimum\"");
    assert_schema_error("'object'", "(root): schema must be an object");
}
END_TEST

/* Stripping removes exactly the fields a "properties" node lacks, at every
 * level, in arrays too, and leaves what it cannot know about alone. */
static void assert_stripped(const char *schema_text, const char *document_text, int expected_removed,
                            const char *expected_text)
{
    json_t *schema = load(schema_text);
    json_t *document = load(document_text);
    ck_assert_int_eq(schema_strip_unknown_fields(schema, document), expected_removed);
    json_t *expected = load(expected_text);
    ck_assert_msg(json_equal(document, expected), "%s stripped by %s", document_text, schema_text);
    json_decref(expected);
    json_decref(document);
    json_decref(schema);
}

START_TEST(test_strip_unknown_fields)
{
    const char *schema = "{'bsonType': 'object', 'properties': {'_id': {'bsonType': 'int'},"
                         " 'a': {'bsonType': 'object', 'properties': {'x': {}}},"
                         " 'l': {'bsonType': 'array', 'items': {'properties': {'y': {}}}},"
                         " 'm': {'bsonType': 'mixed'}}}";
    assert_stripped(schema, "{'_id': 1, 'a': {'x': 1}}", 0, "{'_id': 1, 'a': {'x': 1}}");
    assert_stripped(schema, "{'_id': 1, 'colour': 'red', 'a': {'x': 1, 'z': 2}, 'size': 3}", 3,
                    "{'_id': 1, 'a': {'x': 1}}");
    assert_stripped(schema, "{'l': [{'y': 1, 'q': 2}, 5, {'q': 3}]}", 2, "{'l': [{'y': 1}, 5, {}]}");
    /* A node without properties takes anything below it. */
    assert_stripped(schema, "{'m': {'deep': {'any': 1}}, 'a': 'not a document'}", 0,
                    "{'m': {'deep': {'any': 1}}, 'a': 'not a document'}");
    assert_stripped("{}", "{'a': 1}", 0, "{'a': 1}");
    /* Wrappers are values, not documents with fields. */
    assert_stripped("{'properties': {'o': {'properties': {}}}}",
                    "{'o': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}}", 0,
                    "{'o': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}}");

    json_t *schema_json = load(schema);
    json_t *not_a_document = load("[1]");
    ck_assert_int_eq(schema_strip_unknown_fields(schema_json, not_a_document), -EINVAL);
    json_decref(not_a_document);
    json_decref(schema_json);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("schema");
    TCase *check = tcase_create("check");
    tcase_add_test(check, test_exported_schemas);
    tcase_add_test(check, test_well_formed_schemas);
    tcase_add_test(check, test_malformed_schemas);
    suite_add_tcase(suite, check);

    TCase *validate_case = tcase_create("validate");
    tcase_add_test(validate_case, test_item_documents);
    tcase_add_test(validate_case, test_unknown_field_reported_before_missing_one);
    tcase_add_test(validate_case, test_optional_fields_may_be_null);
    tcase_add_test(validate_case, test_paths_into_documents_and_arrays);
    tcase_add_test(validate_case, test_every_type);
    tcase_add_test(validate_case, test_expected_lists_name_every_type);
    tcase_add_test(validate_case, test_json_schema_type_alias);
    tcase_add_test(validate_case, test_open_schemas);
    tcase_add_test(validate_case, test_root_problems);
    tcase_add_test(validate_case, test_short_message_buffers);
    tcase_add_test(validate_case, test_very_deep_paths);
    suite_add_tcase(suite, validate_case);

    TCase *numbers = tcase_create("numbers");
    tcase_add_test(numbers, test_int_range);
    tcase_add_test(numbers, test_integers_take_the_asked_number_type);
    tcase_add_test(numbers, test_doubles_become_decimal_text);
    tcase_add_test(numbers, test_decimals);
    tcase_add_test(numbers, test_failure_changes_nothing);
    suite_add_tcase(suite, numbers);

    TCase *strip = tcase_create("strip");
    tcase_add_test(strip, test_strip_unknown_fields);
    suite_add_tcase(suite, strip);
    return suite;
}

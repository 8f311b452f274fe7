/*
 * libFuzzer target for rql.h.  Any input must either be refused with a
 * message whose position lies inside the text, or parse into a query that
 * matches documents without fault and whose description parses back into a
 * query with the same description and the same matches.
 */
#include "realmfs/rql.h"
#include "realmfs/value.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t object_id_bytes[VALUE_OBJECT_ID_SIZE] = {0x5f, 0x3a, 0, 0, 0, 0,
                                                                0, 0, 0, 0, 0, 0x0a};
static const uint8_t uuid_bytes[VALUE_UUID_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8,
                                                    9, 10, 11, 12, 13, 14, 15, 16};

/* Documents covering each value type, lists, embedded documents and
 * missing fields; rebuilt for every input so the target keeps no state. */
static json_t *make_documents(void)
{
    return json_pack("[{s:s, s:i, s:f, s:b, s:n, s:[s,s,s], s:[i,i,i], s:[], s:{s:s, s:{s:s}},"
                     " s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s#},"
                     " {s:s, s:i, s:[i, s, n], s:{}}, {}]",
                     "name", "Alice", "age", 30, "score", 4.5, "active", 1, "nothing",
                     "tags", "red", "green", "blue", "numbers", 1, 5, 10, "empty",
                     "address", "city", "Paris", "geo", "zip", "75001",
                     "_id", value_new_object_id(object_id_bytes), "uuid", value_new_uuid(uuid_bytes),
                     "created", value_new_date(1700000000123), "price", value_new_decimal("10.25"),
                     "ratio", value_new_double(NAN), "big", value_new_double(INFINITY),
                     "data", value_new_binary("abc", 3, 0), "nul", "a\0b", (size_t)3,
                     "name", "\xc3\x89LODIE", "age", -1, "tags", 1, "red", "address");
}

static json_t *make_arguments(void)
{
    return json_pack("[i, s, [i, s], n, o, f]", 5, "x", 1, "a", value_new_date(-1500), 2.5);
}

static json_t *make_schema(void)
{
    return json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:{s:{s:s}}}, s:{s:s}}}",
                     "bsonType", "object", "properties", "name", "bsonType", "string", "age",
                     "bsonType", "long", "tags", "bsonType", "array", "address", "bsonType",
                     "object", "properties", "city", "bsonType", "string", "owner", "bsonType",
                     "objectId");
}

static int count_path(const char *path, void *context)
{
    if (path[0] == '\0')
        abort();
    ++*(size_t *)context;
    return 0;
}

static void fail(const char *what, const char *text, const char *detail)
{
    fprintf(stderr, "%s\n  query: %s\n  detail: %s\n", what, text, detail);
    abort();
}

/* The description must read back as an equivalent query. */
static void check_round_trip(const rql_query *query, const char *text, const json_t *schema,
                             const json_t *documents)
{
    char *description = rql_describe(query);
    if (!description)
        return;
    rql_error error;
    rql_query *again = rql_parse(description, NULL, schema, &error);
    if (!again)
        fail("the description does not parse", text, error.message);
    char *description_again = rql_describe(again);
    if (description_again && strcmp(description, description_again) != 0)
        fail("the description changes on a second round", description, description_again);
    size_t index;
    json_t *document;
    json_array_foreach(documents, index, document) {
        if (rql_matches(query, document) != rql_matches(again, document))
            fail("the description matches differently", text, description);
    }
    free(description_again);
    rql_free(again);
    free(description);
}

static void exercise(const char *text, const json_t *arguments, const json_t *schema,
                     const json_t *documents)
{
    rql_error error;
    rql_query *query = rql_parse(text, arguments, schema, &error);
    if (!query) {
        if (error.message[0] == '\0' || error.position > strlen(text))
            fail("refused without a positioned message", text, error.message);
        return;
    }
    size_t index, paths = 0;
    json_t *document;
    json_array_foreach(documents, index, document)
        rql_matches(query, document);
    rql_visit_fields(query, count_path, &paths);
    check_round_trip(query, text, schema, documents);
    rql_free(query);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    json_t *documents = make_documents();
    json_t *arguments = make_arguments();
    json_t *schema = make_schema();
    if (!text || !documents || !arguments || !schema)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    exercise(text, arguments, NULL, documents);
    exercise(text, arguments, schema, documents);
    json_decref(schema);
    json_decref(arguments);
    json_decref(documents);
    free(text);
    return 0;
}

/*
 * libFuzzer target for rule expressions (filter.h): the input, read as
 * JSON, is parsed as an apply_when or document filter and, when accepted,
 * evaluated for a few fixed users against a few fixed documents.
 */
#include "realmfs/ejson.h"
#include "realmfs/filter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const fuzz_documents[] = {
    "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"owner_id\": "
    "\"65a1b2c3d4e5f60718293a4b\","
    " \"team\": \"red\", \"collaborators\": [\"u2\", \"u3\"], \"n\": 5}",
    "{\"stops\": [{\"city\": \"Oslo\", \"tags\": [\"a\", null]}, 3, {\"zip\": 1}],"
    " \"place\": {\"city\": \"Bergen\", \"geo\": {\"lat\": 60.39}}, \"empty\": [], \"none\": null}",
    "{\"when\": {\"$date\": \"2024-05-01T12:00:00Z\"}, \"price\": {\"$numberDecimal\": \"9.99\"},"
    " \"key\": {\"$uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}, \"ratio\": "
    "{\"$numberDouble\": "
    "\"NaN\"}, \"blob\": {\"$binary\": {\"base64\": \"AAE=\", \"subType\": \"00\"}}, \"ok\": true}",
};

static const char fuzz_custom_data[] =
    "{\"_id\": \"65a1b2c3d4e5f60718293a4b\", \"team\": \"red\", \"isTeamAdmin\": true,"
    " \"subscribedTo\": [\"u2\", \"65a1b2c3d4e5f60718293a4b\"], \"favorite\": {\"$oid\": "
    "\"65a1b2c3d4e5f60718293a4c\"}, \"profile\": {\"level\": 3}}";
static const char fuzz_user_data[] = "{\"email\": \"a@b.c\", \"name\": {\"first\": \"Ann\"}}";

static json_t *fuzz_parse_document(const char *text)
{
    ejson_error error;
    json_t *document = ejson_parse(text, strlen(text), &error);
    if (document == NULL)
        abort();
    return document;
}

static int fuzz_count_field(const char *path, void *context)
{
    if (path == NULL || path[0] == '\0')
        abort();
    (*(int *)context)++;
    return 0;
}

/* Evaluation must be a pure function of its inputs. */
static void fuzz_evaluate(const filter *parsed, const json_t *document, const filter_user *user)
{
    if (filter_matches(parsed, document, user) != filter_matches(parsed, document, user))
        abort();
}

static void fuzz_evaluate_everywhere(const filter *parsed)
{
    json_t *custom_data = fuzz_parse_document(fuzz_custom_data);
    json_t *user_data = fuzz_parse_document(fuzz_user_data);
    filter_user full = {"65a1b2c3d4e5f60718293a4b", "normal", user_data, custom_data};
    filter_user empty = {NULL, NULL, NULL, NULL};
    const filter_user *users[] = {&full, &empty, NULL};
    for (size_t u = 0; u < sizeof users / sizeof users[0]; u++) {
        fuzz_evaluate(parsed, NULL, users[u]);
        for (size_t d = 0; d < sizeof fuzz_documents / sizeof fuzz_documents[0]; d++) {
            json_t *document = fuzz_parse_document(fuzz_documents[d]);
            fuzz_evaluate(parsed, document, users[u]);
            json_decref(document);
        }
    }
    json_decref(user_data);
    json_decref(custom_data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *expression =
        json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (expression == NULL)
        return 0;
    char message[256];
    message[0] = '\0';
    filter *parsed =
        filter_parse(expression, "fuzz.json: roles[0].apply_when", message, sizeof message);
    json_decref(expression);
    if (parsed == NULL) {
        if (strncmp(message, "fuzz.json: roles[0].apply_when", 30) != 0)
            abort();
        return 0;
    }
    fuzz_evaluate_everywhere(parsed);
    int field_count = 0;
    filter_visit_fields(parsed, fuzz_count_field, &field_count);
    filter_free(parsed);
    return 0;
}

/*
 * Unit tests for sync_schema.c: the bsonType Development Mode infers for
 * each kind of value, additive extension of an exported schema, values
 * that contradict it, queryable fields from subscriptions, what survives
 * a restart (and a broken learned file), and what is refused outside
 * Development Mode, with the messages; and export_app_write, whose output
 * must load with the learned schemas, and equal the export when nothing
 * was learned.  Apps come from $REALMFS_EXPORTS:
 * sync-todo (Development Mode on) and tiered (off); each test has its own
 * data directory.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "realmfs/app_config.h"
#include "export_app.h"
#include "realmfs/ejson.h"
#include "sync_schema.h"
#include "test_format.h"

static char data_directory[PATH_MAX];
static app_config *app;
static sync_schema *schema;

static void load_export(const char *name)
{
    const char *exports = getenv("REALMFS_EXPORTS");
    ck_assert_msg(exports != NULL, "REALMFS_EXPORTS is not set");
    char directory[PATH_MAX];
    format_checked(directory, sizeof directory, "%s/%s", exports, name);
    char message[512];
    ck_assert_msg(app_config_load(directory, &app, message, sizeof message) == 0, "%s", message);
}

static void open_schema(void)
{
    char message[512] = "not written";
    int result = sync_schema_open(app, data_directory, &schema, message, sizeof message);
    ck_assert_msg(result == 0, "%d: %s", result, message);
    ck_assert_str_eq(message, "");
}

static void open_app(const char *name)
{
    load_export(name);
    open_schema();
}

static void close_app(void)
{
    sync_schema_close(schema);
    app_config_free(app);
    schema = NULL;
    app = NULL;
}

/* Close and open again on the same data directory: a restart. */
static void restart(const char *name)
{
    close_app();
    open_app(name);
}

static void make_data_directory(void)
{
    format_checked(data_directory, sizeof data_directory, "/tmp/test_sync_schema.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_directory));
}

static int remove_entry(const char *path, const struct stat *status, int flag,
                        struct FTW *walk)
{
    (void)status;
    (void)flag;
    (void)walk;
    return remove(path);
}

static void teardown(void)
{
    close_app();
    nftw(data_directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static json_t *parse(const char *text)
{
    ejson_error error;
    json_t *value = ejson_parse(text, strlen(text), &error);
    ck_assert_msg(value != NULL, "%s: %s", text, error.message);
    return value;
}

/* Admit a document given as Extended JSON; the result, with *extended and
 * the message. */
static int admit(const char *collection, const char *text, bool *extended, char *message,
                 size_t message_size)
{
    json_t *document = parse(text);
    int result = sync_schema_admit_document(schema, collection, document, extended, message,
                                            message_size);
    json_decref(document);
    return result;
}

static void assert_admitted(const char *collection, const char *text, bool expect_extended)
{
    char message[512];
    bool extended = !expect_extended;
    int result = admit(collection, text, &extended, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %d: %s", text, result, message);
    ck_assert_msg(extended == expect_extended, "%s: extended %d", text, extended);
}

static void assert_refused(const char *collection, const char *text, const char *expected)
{
    char message[512];
    bool extended = true;
    ck_assert_int_eq(admit(collection, text, &extended, message, sizeof message), -EINVAL);
    ck_assert(!extended);
    ck_assert_str_eq(message, expected);
}

static const json_t *schema_of(const char *collection)
{
    const app_collection *described = app_config_find_collection(app, collection);
    ck_assert_msg(described != NULL, "no collection %s", collection);
    return described->schema;
}

static void assert_schema(const char *collection, const char *expected_text)
{
    json_error_t error;
    json_t *expected = json_loads(expected_text, 0, &error);
    ck_assert_msg(expected != NULL, "%s", error.text);
    const json_t *actual = schema_of(collection);
    char *dumped = json_dumps(actual, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(expected, (json_t *)actual), "schema of %s: %s", collection,
                  dumped);
    free(dumped);
    json_decref(expected);
}

/* The exported schema of sync-todo's Item, with extra properties. */
#define ITEM_SCHEMA(extra)                                                        \
    "{\"title\": \"Item\", \"bsonType\": \"object\","                             \
    " \"required\": [\"_id\", \"owner_id\", \"summary\", \"isComplete\"],"        \
    " \"properties\": {\"_id\": {\"bsonType\": \"objectId\"},"                    \
    " \"isComplete\": {\"bsonType\": \"bool\"}, \"owner_id\": {\"bsonType\": \"string\"}," \
    " \"summary\": {\"bsonType\": \"string\"}" extra "}}"

#define ITEM_DOCUMENT(extra)                                                      \
    "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"owner_id\": \"u1\","   \
    " \"summary\": \"milk\", \"isComplete\": false" extra "}"

static void write_learned_file(const char *text)
{
    char path[PATH_MAX];
    format_checked(path, sizeof path, "%s/schema", data_directory);
    ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
    format_checked(path, sizeof path, "%s/schema/learned.json", data_directory);
    FILE *file = fopen(path, "w");
    ck_assert_ptr_nonnull(file);
    ck_assert_int_ge(fputs(text, file), 0);
    ck_assert_int_eq(fclose(file), 0);
}

static json_t *subscriptions(const char *collection, const char *query)
{
    return json_pack("{s:[{s:s, s:s}]}", collection, "name", "test", "query", query);
}

static void admit_subscription(const char *collection, const char *query)
{
    json_t *set = subscriptions(collection, query);
    char message[512];
    ck_assert_int_eq(sync_schema_admit_subscriptions(schema, set, message, sizeof message), 0);
    json_decref(set);
}

/* ------------------------------------------------------------------------ */
/* Development Mode                                                         */

static void setup_development(void)
{
    make_data_directory();
    open_app("sync-todo");
    ck_assert(sync_schema_development_mode(schema));
}

START_TEST(test_new_collection_infers_every_type)
{
    assert_admitted("Note",
                    "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"text\": \"hi\","
                    " \"count\": 3, \"ratio\": 0.5, \"huge\": {\"$numberDouble\": \"Infinity\"},"
                    " \"price\": {\"$numberDecimal\": \"1.10\"}, \"done\": true,"
                    " \"due\": {\"$date\": \"2024-05-01T00:00:00Z\"},"
                    " \"ref\": {\"$uuid\": \"01234567-89ab-4def-8123-456789abcdef\"},"
                    " \"blob\": {\"$binary\": {\"base64\": \"AAE=\", \"subType\": \"00\"}},"
                    " \"nothing\": null, \"place\": {\"city\": \"Oslo\", \"zip\": null},"
                    " \"tags\": [\"a\", null, \"b\"], \"numbers\": [1, 2.5], \"any\": [1, \"x\"],"
                    " \"empty\": [], \"visits\": [{\"at\": 1}, {\"by\": \"me\"}]}",
                    true);
    assert_schema("Note",
                  "{\"title\": \"Note\", \"bsonType\": \"object\", \"required\": [\"_id\"],"
                  " \"properties\": {"
                  "  \"_id\": {\"bsonType\": \"objectId\"}, \"text\": {\"bsonType\": \"string\"},"
                  "  \"count\": {\"bsonType\": \"long\"}, \"ratio\": {\"bsonType\": \"double\"},"
                  "  \"huge\": {\"bsonType\": \"double\"}, \"price\": {\"bsonType\": \"decimal\"},"
                  "  \"done\": {\"bsonType\": \"bool\"}, \"due\": {\"bsonType\": \"date\"},"
                  "  \"ref\": {\"bsonType\": \"uuid\"}, \"blob\": {\"bsonType\": \"binData\"},"
                  "  \"place\": {\"bsonType\": \"object\","
                  "   \"properties\": {\"city\": {\"bsonType\": \"string\"}}},"
                  "  \"tags\": {\"bsonType\": \"array\","
                  "   \"items\": {\"bsonType\": [\"string\", \"null\"]}},"
                  "  \"numbers\": {\"bsonType\": \"array\", \"items\": {\"bsonType\": \"double\"}},"
                  "  \"any\": {\"bsonType\": \"array\", \"items\": {\"bsonType\": \"mixed\"}},"
                  "  \"empty\": {\"bsonType\": \"array\"},"
                  "  \"visits\": {\"bsonType\": \"array\", \"items\": {\"bsonType\": \"object\","
                  "   \"properties\": {\"at\": {\"bsonType\": \"long\"},"
                  "    \"by\": {\"bsonType\": \"string\"}}}}}}");
    const app_collection *note = app_config_find_collection(app, "Note");
    ck_assert_str_eq(note->database, "todo");
    ck_assert_str_eq(note->service, "mongodb-atlas");
    ck_assert_str_eq(note->directory, "Note");
    json_t *sent = sync_schema_collections_json(schema);
    ck_assert(json_object_get(sent, "Note") == note->schema);
    ck_assert(json_object_get(sent, "Item") == schema_of("Item"));
    ck_assert_int_eq(json_object_size(sent), 2);
    json_decref(sent);
}
END_TEST

START_TEST(test_extension_is_additive)
{
    const app_collection *item = app_config_find_collection(app, "Item");
    assert_admitted("Item", ITEM_DOCUMENT(""), false);
    assert_admitted("Item", ITEM_DOCUMENT(", \"priority\": 2, \"labels\": []"), true);
    assert_schema("Item", ITEM_SCHEMA(", \"priority\": {\"bsonType\": \"long\"},"
                                      " \"labels\": {\"bsonType\": \"array\"}"));
    /* The first elements give the items; a null adds nothing. */
    assert_admitted("Item", ITEM_DOCUMENT(", \"labels\": [\"x\"], \"note\": null"), true);
    assert_schema("Item", ITEM_SCHEMA(", \"priority\": {\"bsonType\": \"long\"},"
                                      " \"labels\": {\"bsonType\": \"array\","
                                      "  \"items\": {\"bsonType\": \"string\"}}"));
    assert_admitted("Item", ITEM_DOCUMENT(", \"labels\": [\"y\"], \"priority\": 7"), false);
    /* Pointers to a collection outlive additions of others. */
    assert_admitted("Other", "{\"_id\": 1}", true);
    ck_assert_ptr_eq(app_config_find_collection(app, "Item"), item);
}
END_TEST

START_TEST(test_contradiction_is_refused_and_changes_nothing)
{
    assert_refused("Item",
                   "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"owner_id\": \"u1\","
                   " \"summary\": 5, \"isComplete\": false, \"priority\": 2}",
                   "summary: expected string, found long");
    assert_schema("Item", ITEM_SCHEMA(""));
    assert_refused("Item", "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}}",
                   "owner_id: required field is missing");
    assert_refused("Note", "{\"text\": \"no id\"}", "_id: required field is missing");
    ck_assert_ptr_null(app_config_find_collection(app, "Note"));
    assert_admitted("Item", ITEM_DOCUMENT(", \"tags\": [\"a\"]"), true);
    assert_refused("Item", ITEM_DOCUMENT(", \"tags\": [\"a\", 2]"),
                   "tags[1]: expected string, found long");
    char path[PATH_MAX];
    format_checked(path, sizeof path, "%s/schema/learned.json", data_directory);
    json_t *learned = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(learned);
    ck_assert_ptr_null(json_object_get(json_object_get(learned, "collections"), "Note"));
    json_decref(learned);
}
END_TEST

START_TEST(test_subscription_fields_become_queryable)
{
    ck_assert(!app_config_field_is_queryable(app, "Item", "summary"));
    admit_subscription("Item", "summary BEGINSWITH \"m\" AND place.city == \"Oslo\" AND "
                               "owner_id == \"u1\"");
    ck_assert(app_config_field_is_queryable(app, "Item", "summary"));
    ck_assert(app_config_field_is_queryable(app, "Note", "place"));
    ck_assert(!app_config_field_is_queryable(app, "Item", "place.city"));
    size_t count = app_config_queryable_field_count(app);
    ck_assert_str_eq(app_config_queryable_field_at(app, count - 2), "summary");
    ck_assert_str_eq(app_config_queryable_field_at(app, count - 1), "place");
    admit_subscription("Item", "this is not RQL");
    admit_subscription("Item", "summary == \"again\"");
    ck_assert_uint_eq(app_config_queryable_field_count(app), count);
    restart("sync-todo");
    ck_assert(app_config_field_is_queryable(app, "Item", "summary"));
    ck_assert(app_config_field_is_queryable(app, "Item", "place"));
    ck_assert_uint_eq(app_config_queryable_field_count(app), count);
}
END_TEST

START_TEST(test_learned_schemas_survive_a_restart)
{
    assert_admitted("Item", ITEM_DOCUMENT(", \"priority\": 2"), true);
    assert_admitted("Note", "{\"_id\": \"n1\", \"text\": \"hi\"}", true);
    restart("sync-todo");
    assert_schema("Item", ITEM_SCHEMA(", \"priority\": {\"bsonType\": \"long\"}"));
    assert_schema("Note", "{\"title\": \"Note\", \"bsonType\": \"object\", \"required\": [\"_id\"],"
                          " \"properties\": {\"_id\": {\"bsonType\": \"string\"},"
                          " \"text\": {\"bsonType\": \"string\"}}}");
    assert_admitted("Note", "{\"_id\": \"n2\", \"text\": \"again\"}", false);
}
END_TEST

START_TEST(test_export_wins_over_learned_conflicts)
{
    write_learned_file("{\"collections\": {\"Item\": {\"bsonType\": \"object\", \"properties\": {"
                       "\"summary\": {\"bsonType\": \"long\"}, \"size\": {\"bsonType\": \"int\"}}}},"
                       " \"queryable_fields_names\": [\"size\"]}");
    restart("sync-todo");
    assert_schema("Item", ITEM_SCHEMA(", \"size\": {\"bsonType\": \"int\"}"));
    ck_assert(app_config_field_is_queryable(app, "Other", "size"));
}
END_TEST

START_TEST(test_broken_learned_file_is_named)
{
    static const struct {
        const char *text;
        const char *problem;
    } cases[] = {
        {"{\"collections\": {", "line 1, column 17: "},
        {"[]", "expected {\"collections\": {...}, \"queryable_fields_names\": [...]}"},
        {"{\"collections\": {\"Item\": {\"bsonType\": \"strng\"}}, \"queryable_fields_names\": []}",
         "\"collections\".\"Item\": (root): unknown bsonType \"strng\""},
        {"{\"collections\": {}, \"queryable_fields_names\": [1]}",
         "\"queryable_fields_names\"[0]: expected a string"},
        {"{\"collections\": {\"Note\": {\"title\": \"Other\"}}, \"queryable_fields_names\": []}",
         "\"collections\".\"Note\": Note: \"title\": expected \"Note\", found "
         "\"Other\""},
    };
    close_app();
    load_export("sync-todo");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_learned_file(cases[i].text);
        char message[512];
        sync_schema *broken = (sync_schema *)&broken;
        ck_assert_int_eq(sync_schema_open(app, data_directory, &broken, message, sizeof message),
                         -EINVAL);
        ck_assert_ptr_null(broken);
        char expected_prefix[PATH_MAX];
        format_checked(expected_prefix, sizeof expected_prefix, "%s/schema/learned.json: %s",
                       data_directory, cases[i].problem);
        ck_assert_msg(strncmp(message, expected_prefix, strlen(expected_prefix)) == 0,
                      "case %zu: %s", i, message);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Outside Development Mode                                                 */

static void setup_fixed(void)
{
    make_data_directory();
    open_app("tiered");
    ck_assert(!sync_schema_development_mode(schema));
}

#define TIERED_ITEM(extra)                                                        \
    "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"owner_id\": \"u1\","   \
    " \"name\": \"n\", \"team\": \"t\"" extra "}"

START_TEST(test_fixed_schema_refusals)
{
    assert_admitted("Item", TIERED_ITEM(""), false);
    assert_refused("Item", TIERED_ITEM(", \"colour\": \"red\""), "colour: field not in schema");
    assert_refused("Item",
                   "{\"_id\": {\"$oid\": \"65a1b2c3d4e5f60718293a4b\"}, \"owner_id\": \"u1\","
                   " \"name\": 3, \"team\": \"t\"}",
                   "name: expected string, found long");
    assert_refused("Note", "{\"_id\": 1}", "collection \"Note\" is not in the schema");
    json_t *array = json_pack("[i]", 1);
    char message[512];
    bool extended;
    ck_assert_int_eq(sync_schema_admit_document(schema, "Item", array, &extended, message,
                                                sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "(root): not a document");
    json_decref(array);
    json_t *before = json_deep_copy(schema_of("Item"));
    admit_subscription("Item", "colour == \"red\"");
    ck_assert(!app_config_field_is_queryable(app, "Item", "colour"));
    ck_assert(json_equal(before, (json_t *)schema_of("Item")));
    json_decref(before);
    char path[PATH_MAX];
    format_checked(path, sizeof path, "%s/schema", data_directory);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* A copy of an export in the data directory, changed by a shell command
 * run in it, loaded and opened. */
static void open_changed_copy(const char *name, const char *change)
{
    char command[4 * PATH_MAX];
    format_checked(command, sizeof command, "cp -r '%s/%s' '%s/app' && cd '%s/app' && %s",
                   getenv("REALMFS_EXPORTS"), name, data_directory, data_directory, change);
    ck_assert_int_eq(system(command), 0);
    char directory[PATH_MAX];
    format_checked(directory, sizeof directory, "%s/app", data_directory);
    char message[512];
    ck_assert_msg(app_config_load(directory, &app, message, sizeof message) == 0, "%s", message);
    open_schema();
}

START_TEST(test_collection_without_schema_takes_anything)
{
    close_app();
    open_changed_copy("tiered", "rm data_sources/mongodb-atlas/Item/Item/schema.json");
    ck_assert_ptr_null(schema_of("Item"));
    assert_admitted("Item", "{\"_id\": 1, \"anything\": [1, \"x\"]}", false);
    assert_refused("Note", "{\"_id\": 1}", "collection \"Note\" is not in the schema");
}
END_TEST

START_TEST(test_new_collection_needs_a_database_name)
{
    close_app();
    open_changed_copy("sync-todo", "sed -i '/database_name/d' sync/config.json");
    ck_assert(sync_schema_development_mode(schema));
    assert_refused("Note", "{\"_id\": 1}",
                   "collection \"Note\" is not in the schema, and Development Mode cannot add "
                   "it: sync/config.json has no \"database_name\"");
    assert_admitted("Item", ITEM_DOCUMENT(", \"priority\": 2"), true);
    char message[512];
    json_t *note = json_pack("{s:s}", "bsonType", "object");
    ck_assert_int_eq(app_config_set_collection_schema(app, "Note", note, message, sizeof message),
                     -EINVAL);
    json_decref(note);
    ck_assert_str_eq(message, "sync/config.json: cannot add collection \"Note\": "
                              "\"database_name\" is not set");
    json_t *wrong_title = json_pack("{s:s}", "title", "Wrong");
    ck_assert_int_eq(app_config_set_collection_schema(app, "Item", wrong_title, message,
                                                      sizeof message),
                     -EINVAL);
    json_decref(wrong_title);
    ck_assert_str_eq(message, "Item: \"title\": expected \"Item\", found \"Wrong\"");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* export-app                                                               */

static const char *const export_names[] = {
    "add-collaborators", "edge-server", "read-and-write-own-data",
    "restricted-feed",   "sync-todo",   "tiered",
};

static void export_path(const char *name, char *path, size_t size)
{
    format_checked(path, size, "%s/%s", getenv("REALMFS_EXPORTS"), name);
}

static void export_ok(const char *name, const char *out)
{
    char app_directory[PATH_MAX], message[1024];
    export_path(name, app_directory, sizeof app_directory);
    int result = export_app_write(app_directory, data_directory, out, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %d: %s", name, result, message);
}

/* The collections, their schemas and the queryable fields of both apps
 * are the same. */
static void assert_same_app(const app_config *expected, const app_config *actual)
{
    ck_assert_uint_eq(app_config_collection_count(actual), app_config_collection_count(expected));
    for (size_t i = 0; i < app_config_collection_count(expected); i++) {
        const app_collection *want = app_config_collection_at(expected, i);
        const app_collection *have = app_config_find_collection(actual, want->name);
        ck_assert_msg(have != NULL, "no collection %s", want->name);
        ck_assert_str_eq(have->database, want->database);
        ck_assert_msg(want->schema == NULL ? have->schema == NULL
                                           : json_equal((json_t *)want->schema,
                                                        (json_t *)have->schema),
                      "schema of %s", want->name);
    }
    ck_assert_uint_eq(app_config_queryable_field_count(actual),
                      app_config_queryable_field_count(expected));
    for (size_t i = 0; i < app_config_queryable_field_count(expected); i++)
        ck_assert_str_eq(app_config_queryable_field_at(actual, i),
                         app_config_queryable_field_at(expected, i));
}

static app_config *load_directory(const char *directory)
{
    app_config *loaded;
    char message[512];
    ck_assert_msg(app_config_load(directory, &loaded, message, sizeof message) == 0, "%s: %s",
                  directory, message);
    return loaded;
}

START_TEST(test_export_app_writes_what_was_learned)
{
    assert_admitted("Item", ITEM_DOCUMENT(", \"priority\": 2"), true);
    assert_admitted("Note", "{\"_id\": \"n1\", \"text\": \"hi\"}", true);
    admit_subscription("Note", "text == \"hi\"");
    char out[PATH_MAX];
    format_checked(out, sizeof out, "%s/out", data_directory);
    export_ok("sync-todo", out);
    app_config *exported = load_directory(out);
    assert_same_app(app, exported);
    ck_assert_str_eq(app_config_find_collection(exported, "Note")->directory, "Note");
    app_config_free(exported);

    char command[4 * PATH_MAX];
    /* The CLI's layout: four spaces, sorted keys; other sync settings kept. */
    format_checked(command, sizeof command,
                   "head -2 '%s/data_sources/mongodb-atlas/todo/Note/schema.json' | "
                   "grep -qx '    \"bsonType\": \"object\",' && "
                   "grep -q '\"client_max_offline_days\": 30' '%s/sync/config.json'",
                   out, out);
    ck_assert_int_eq(system(command), 0);
    /* Files without learning are copied as they are. */
    format_checked(command, sizeof command,
                   "cmp -s '%s/sync-todo/data_sources/mongodb-atlas/todo/Item/rules.json' "
                   "'%s/data_sources/mongodb-atlas/todo/Item/rules.json'",
                   getenv("REALMFS_EXPORTS"), out);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

START_TEST(test_export_app_without_learning_is_a_copy)
{
    for (size_t i = 0; i < sizeof export_names / sizeof export_names[0]; i++) {
        char app_directory[PATH_MAX], out[PATH_MAX], command[4 * PATH_MAX];
        export_path(export_names[i], app_directory, sizeof app_directory);
        format_checked(out, sizeof out, "%s/%s", data_directory, export_names[i]);
        export_ok(export_names[i], out);
        format_checked(command, sizeof command, "diff -r '%s' '%s' >&2", app_directory, out);
        ck_assert_msg(system(command) == 0, "%s differs", export_names[i]);
        app_config *original = load_directory(app_directory);
        app_config *exported = load_directory(out);
        assert_same_app(original, exported);
        app_config_free(exported);
        app_config_free(original);
    }
}
END_TEST

START_TEST(test_export_app_refusals)
{
    char app_directory[PATH_MAX], out[PATH_MAX], expected[2 * PATH_MAX], message[1024];
    export_path("sync-todo", app_directory, sizeof app_directory);
    format_checked(out, sizeof out, "%s/schema", data_directory);
    assert_admitted("Item", ITEM_DOCUMENT(", \"priority\": 2"), true);
    ck_assert_int_eq(export_app_write(app_directory, data_directory, out, message, sizeof message),
                     -EEXIST);
    format_checked(expected, sizeof expected, "%s: exists and is not empty", out);
    ck_assert_str_eq(message, expected);
    ck_assert_int_eq(export_app_write(app_directory, "/nonexistent/data", "/nonexistent/out",
                                      message, sizeof message),
                     -ENOENT);
    ck_assert_str_eq(message, "/nonexistent/data: No such file or directory");
    char copy[PATH_MAX], command[4 * PATH_MAX];
    format_checked(copy, sizeof copy, "%s/app", data_directory);
    format_checked(command, sizeof command, "cp -r '%s' '%s'", app_directory, copy);
    ck_assert_int_eq(system(command), 0);
    format_checked(out, sizeof out, "%s/inside", copy);
    ck_assert_int_eq(export_app_write(copy, data_directory, out, message, sizeof message),
                     -EINVAL);
    format_checked(expected, sizeof expected, "%s: is inside the app export", out);
    ck_assert_str_eq(message, expected);
    write_learned_file("{\"collections\": {}, \"queryable_fields_names\": 3}");
    format_checked(out, sizeof out, "%s/never", data_directory);
    ck_assert_int_eq(export_app_write(app_directory, data_directory, out, message, sizeof message),
                     -EINVAL);
    ck_assert_msg(strncmp(message, "cannot read what Development Mode learned: ",
                          strlen("cannot read what Development Mode learned: ")) == 0,
                  "%s", message);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("sync_schema");
    TCase *development = tcase_create("development");
    tcase_add_checked_fixture(development, setup_development, teardown);
    tcase_add_test(development, test_new_collection_infers_every_type);
    tcase_add_test(development, test_extension_is_additive);
    tcase_add_test(development, test_contradiction_is_refused_and_changes_nothing);
    tcase_add_test(development, test_subscription_fields_become_queryable);
    tcase_add_test(development, test_learned_schemas_survive_a_restart);
    tcase_add_test(development, test_export_wins_over_learned_conflicts);
    tcase_add_test(development, test_broken_learned_file_is_named);
    tcase_add_test(development, test_new_collection_needs_a_database_name);
    tcase_add_test(development, test_export_app_writes_what_was_learned);
    tcase_add_test(development, test_export_app_without_learning_is_a_copy);
    tcase_add_test(development, test_export_app_refusals);
    suite_add_tcase(suite, development);

    TCase *fixed = tcase_create("fixed");
    tcase_add_checked_fixture(fixed, setup_fixed, teardown);
    tcase_add_test(fixed, test_fixed_schema_refusals);
    tcase_add_test(fixed, test_collection_without_schema_takes_anything);
    suite_add_tcase(suite, fixed);
    return suite;
}

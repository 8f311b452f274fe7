/*
 * Unit tests for app_config.c: every exported app under $REALMFS_EXPORTS
 * loads, with exact expectations for the six known ones; defaults of a
 * minimal app; the warnings for parts realmfs-server does not run; and the
 * message for each kind of broken file, in copies of the exports.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "realmfs/app_config.h"
#include "test_format.h"

/* snprintf that fails the test rather than cut a path or a command short. */
static const char *exports_directory(void)
{
    const char *directory = getenv("REALMFS_EXPORTS");
    ck_assert_msg(directory != NULL, "REALMFS_EXPORTS is not set");
    return directory;
}

static app_config *load_ok(const char *directory)
{
    app_config *config = NULL;
    char message[512] = "not written";
    int result = app_config_load(directory, &config, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %s", directory, message);
    ck_assert_str_eq(message, "");
    ck_assert_ptr_nonnull(config);
    return config;
}

static app_config *load_export(const char *name)
{
    char directory[PATH_MAX];
    format_checked(directory, sizeof directory, "%s/%s", exports_directory(), name);
    return load_ok(directory);
}

static void assert_load_fails(const char *directory, int expected_result,
                              const char *expected_message)
{
    app_config *config = (app_config *)&config; /* not NULL, to see the load clear it */
    char message[512] = "";
    ck_assert_int_eq(app_config_load(directory, &config, message, sizeof message), expected_result);
    ck_assert_ptr_null(config);
    ck_assert_str_eq(message, expected_message);
}

/* ------------------------------------------------------------------------ */
/* Scratch apps: copies of an export, or apps written from nothing          */

typedef struct scratch_app {
    char root[PATH_MAX]; /* a temporary directory holding the app */
    char path[PATH_MAX]; /* <root>/app */
} scratch_app;

__attribute__((format(printf, 1, 2)))
static void run(const char *format, ...)
{
    char command[4 * PATH_MAX];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(command, sizeof command, format, arguments);
    va_end(arguments);
    ck_assert_msg(length >= 0 && (size_t)length < sizeof command, "too long: %s", command);
    ck_assert_msg(system(command) == 0, "failed: %s", command);
}

static void scratch_create(scratch_app *app)
{
    const char *temporary = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    format_checked(app->root, sizeof app->root, "%s/realmfs-app-config-XXXXXX", temporary);
    ck_assert_ptr_nonnull(mkdtemp(app->root));
    format_checked(app->path, sizeof app->path, "%s/app", app->root);
}

static void scratch_copy_export(scratch_app *app, const char *name)
{
    scratch_create(app);
    run("cp -r '%s/%s' '%s'", exports_directory(), name, app->path);
}

static void scratch_remove(const scratch_app *app)
{
    run("rm -rf '%s'", app->root);
}

/* Writes text to a file of the app, creating its directories. */
static void scratch_write(const scratch_app *app, const char *file, const char *text)
{
    char path[PATH_MAX];
    format_checked(path, sizeof path, "%s/%s", app->path, file);
    run("mkdir -p \"$(dirname '%s')\"", path);
    FILE *stream = fopen(path, "w");
    ck_assert_msg(stream != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_ge(fputs(text, stream), 0);
    ck_assert_int_eq(fclose(stream), 0);
}

static void scratch_delete(const scratch_app *app, const char *file)
{
    run("rm -rf '%s/%s'", app->path, file);
}

/* In a copy of export, file is replaced by text (or deleted when text is
 * NULL), and loading must fail with exactly that result and message. */
static void assert_broken_export(const char *export, const char *file, const char *text,
                                 int expected_result, const char *expected_message)
{
    scratch_app app;
    scratch_copy_export(&app, export);
    if (text == NULL)
        scratch_delete(&app, file);
    else
        scratch_write(&app, file, text);
    assert_load_fails(app.path, expected_result, expected_message);
    scratch_remove(&app);
}

static void assert_broken_sync_config(const char *text, const char *expected_message)
{
    assert_broken_export("sync-todo", "sync/config.json", text, -EINVAL, expected_message);
}

/* The smallest app realmfs-server accepts. */
static void scratch_write_minimal(const scratch_app *app)
{
    scratch_write(app, "root_config.json", "{\"name\": \"minimal\"}");
    scratch_write(app, "sync/config.json", "{\"type\": \"flexible\"}");
    scratch_write(app, "data_sources/mongodb-atlas/config.json",
                  "{\"name\": \"mongodb-atlas\", \"type\": \"mongodb-atlas\"}");
}

/* ------------------------------------------------------------------------ */
/* The exported apps                                                        */

/* Every app in the exports directory, including any added after these
 * tests were written. */
START_TEST(test_every_export_loads)
{
    DIR *exports = opendir(exports_directory());
    ck_assert_ptr_nonnull(exports);
    size_t loaded = 0;
    for (struct dirent *entry; (entry = readdir(exports)) != NULL;) {
        char directory[PATH_MAX];
        struct stat status;
        format_checked(directory, sizeof directory, "%s/%s", exports_directory(), entry->d_name);
        if (entry->d_name[0] == '.' || stat(directory, &status) != 0 || !S_ISDIR(status.st_mode))
            continue;
        app_config *config = load_ok(directory);
        ck_assert_ptr_nonnull(app_config_name(config));
        ck_assert_ptr_nonnull(app_config_sync(config));
        app_config_free(config);
        loaded++;
    }
    closedir(exports);
    ck_assert_uint_ge(loaded, 6);
}
END_TEST

typedef struct expected_app {
    const char *directory;
    const char *name;
    const char *app_id;
    bool development_mode;
    const char *database_name;
    /* "<database>/<name>:" then the files the collection has */
    const char *collections[2];
    /* fields of collection Item */
    const char *queryable[4];
    const char *not_queryable[4];
    bool providers[APP_AUTH_PROVIDER_COUNT]; /* anonymous, user/password, API key */
    const char *custom_user_data;            /* "<database>/<collection>/<user id field>" */
    const char *first_default_role;
    const char *warnings[3];
} expected_app;

static const expected_app expected_apps[] = {
    {
        .directory = "sync-todo",
        .name = "Todo-Sync",
        .app_id = "todo-sync-xbrma",
        .development_mode = true,
        .database_name = "todo",
        .collections = {"todo/Item: schema relationships rules"},
        .queryable = {"_id", "owner_id"},
        .not_queryable = {"summary", "isComplete"},
        .providers = {false, true, false},
        .first_default_role = "read-not-write",
        .warnings = {"functions/: 1 function is not run by realmfs-server"},
    },
    {
        .directory = "edge-server",
        .name = "template-edge-server",
        .development_mode = true,
        .database_name = "todo",
        .collections = {"todo/Item: schema rules"},
        .queryable = {"_id"},
        .not_queryable = {"owner_id", "summary"},
        .providers = {false, false, false},
        .first_default_role = "read-not-write",
        .warnings = {"functions/: 1 function is not run by realmfs-server"},
    },
    {
        .directory = "tiered",
        .name = "FlexSyncPermissions",
        .app_id = "flexsyncpermissions-jtkpp",
        .development_mode = false,
        .database_name = "Item",
        .collections = {"Item/Item: schema relationships"},
        .queryable = {"_id", "owner_id", "team"},
        .not_queryable = {"name", "collaborators"},
        .providers = {true, true, false},
        .custom_user_data = "Item/User/_id",
        .first_default_role = "admin",
        .warnings = {"functions/: 4 functions are not run by realmfs-server",
                     "triggers/: 1 trigger is not run by realmfs-server"},
    },
    {
        .directory = "restricted-feed",
        .name = "FlexSyncPermissions",
        .app_id = "flexsyncpermissions-jojzp",
        .development_mode = true,
        .database_name = "Item",
        .collections = {"Item/Item: schema relationships"},
        .queryable = {"_id", "owner_id", "subscribedTo"},
        .not_queryable = {"team", "name"},
        .providers = {true, true, false},
        .custom_user_data = "Item/User/_id",
        .first_default_role = "author-subscriber",
        .warnings = {"functions/: 4 functions are not run by realmfs-server",
                     "triggers/: 1 trigger is not run by realmfs-server"},
    },
    {
        .directory = "add-collaborators",
        .name = "add-collaborators",
        .app_id = "add-collaborators-catqy",
        .development_mode = true,
        .database_name = "add_collaborators",
        .collections = {"add_collaborators/Item: schema relationships"},
        .queryable = {"_id", "collaborators", "owner_id"},
        .not_queryable = {"name"},
        .providers = {false, true, false},
        .first_default_role = "collaborator",
        .warnings = {"functions/: 1 function is not run by realmfs-server"},
    },
    {
        .directory = "read-and-write-own-data",
        .name = "read-and-write-own-data",
        .app_id = "read-and-write-own-data-patpl",
        .development_mode = true,
        .database_name = "read_write_own_data",
        .queryable = {"_id", "owner_id"},
        .not_queryable = {"summary"},
        .providers = {true, false, false},
        .first_default_role = "owner-read-write",
    },
};

static size_t count_strings(const char *const *strings, size_t capacity)
{
    size_t count = 0;
    while (count < capacity && strings[count] != NULL)
        count++;
    return count;
}

#define COUNT_STRINGS(array) count_strings((array), sizeof(array) / sizeof((array)[0]))

static void describe_collection(const app_collection *collection, char *text, size_t size)
{
    snprintf(text, size, "%s/%s:%s%s%s", collection->database, collection->name,
             collection->schema != NULL ? " schema" : "",
             collection->relationships != NULL ? " relationships" : "",
             collection->rules != NULL ? " rules" : "");
}

static void assert_collections(const app_config *config, const expected_app *expected)
{
    size_t count = COUNT_STRINGS(expected->collections);
    ck_assert_uint_eq(app_config_collection_count(config), count);
    for (size_t i = 0; i < count; i++) {
        const app_collection *collection = app_config_collection_at(config, i);
        char description[256];
        describe_collection(collection, description, sizeof description);
        ck_assert_str_eq(description, expected->collections[i]);
        ck_assert_str_eq(collection->service, "mongodb-atlas");
        ck_assert_ptr_eq(app_config_find_collection(config, collection->name), collection);
    }
    ck_assert_ptr_null(app_config_collection_at(config, count));
    ck_assert_ptr_null(app_config_find_collection(config, "User"));
}

static void assert_sync(const app_config *config, const expected_app *expected)
{
    const app_sync_settings *sync = app_config_sync(config);
    ck_assert(sync->enabled);
    ck_assert_int_eq(sync->development_mode, expected->development_mode);
    ck_assert_str_eq(sync->service_name, "mongodb-atlas");
    ck_assert_str_eq(sync->database_name, expected->database_name);
    ck_assert_double_eq(sync->client_max_offline_days, 30);
    ck_assert(!sync->recovery_mode_disabled);
    ck_assert_ptr_null(app_config_indexed_queryable_field(config));
    for (size_t i = 0; i < COUNT_STRINGS(expected->queryable); i++)
        ck_assert_msg(app_config_field_is_queryable(config, "Item", expected->queryable[i]),
                      "%s should be queryable", expected->queryable[i]);
    for (size_t i = 0; i < COUNT_STRINGS(expected->not_queryable); i++)
        ck_assert_msg(!app_config_field_is_queryable(config, "Item", expected->not_queryable[i]),
                      "%s should not be queryable", expected->not_queryable[i]);
}

static void assert_auth(const app_config *config, const expected_app *expected)
{
    for (int provider = 0; provider < APP_AUTH_PROVIDER_COUNT; provider++)
        ck_assert_msg(app_config_provider_enabled(config, provider)
                          == expected->providers[provider],
                      "provider %d", provider);
    const app_custom_user_data *custom = app_config_custom_user_data(config);
    if (expected->custom_user_data == NULL) {
        ck_assert_ptr_null(custom);
        return;
    }
    ck_assert_ptr_nonnull(custom);
    char description[256];
    snprintf(description, sizeof description, "%s/%s/%s", custom->database, custom->collection,
             custom->user_id_field);
    ck_assert_str_eq(description, expected->custom_user_data);
    ck_assert_str_eq(custom->service_name, "mongodb-atlas");
}

static void assert_warnings(const app_config *config, const char *const *expected,
                            size_t expected_count)
{
    ck_assert_uint_eq(app_config_warning_count(config), expected_count);
    for (size_t i = 0; i < expected_count; i++)
        ck_assert_str_eq(app_config_warning_at(config, i), expected[i]);
    ck_assert_ptr_null(app_config_warning_at(config, expected_count));
}

START_TEST(test_known_export)
{
    const expected_app *expected = &expected_apps[_i];
    app_config *config = load_export(expected->directory);
    ck_assert_str_eq(app_config_name(config), expected->name);
    if (expected->app_id == NULL)
        ck_assert_ptr_null(app_config_app_id(config));
    else
        ck_assert_str_eq(app_config_app_id(config), expected->app_id);
    assert_sync(config, expected);
    assert_collections(config, expected);
    assert_auth(config, expected);
    const json_t *roles = json_object_get(app_config_default_rule(config), "roles");
    const json_t *first_role = json_array_get(roles, 0);
    ck_assert_str_eq(json_string_value(json_object_get(first_role, "name")),
                     expected->first_default_role);
    assert_warnings(config, expected->warnings, COUNT_STRINGS(expected->warnings));
    app_config_free(config);
}
END_TEST

/* The collection keeps rules.json as written, for the rules engine. */
START_TEST(test_collection_documents_are_kept)
{
    app_config *config = load_export("edge-server");
    const app_collection *item = app_config_find_collection(config, "Item");
    ck_assert_ptr_nonnull(item);
    const json_t *roles = json_object_get(item->rules, "roles");
    ck_assert_uint_eq(json_array_size(roles), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(roles, 0), "name")),
                     "edgeServerReadAllWriteOwn");
    ck_assert_str_eq(json_string_value(json_object_get(item->schema, "title")), "Item");
    app_config_free(config);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Defaults and variants                                                    */

START_TEST(test_minimal_app_takes_defaults)
{
    scratch_app app;
    scratch_create(&app);
    scratch_write_minimal(&app);
    app_config *config = load_ok(app.path);
    ck_assert_str_eq(app_config_name(config), "minimal");
    ck_assert_ptr_null(app_config_app_id(config));
    const app_sync_settings *sync = app_config_sync(config);
    ck_assert(sync->enabled);
    ck_assert(!sync->development_mode);
    ck_assert_str_eq(sync->service_name, "mongodb-atlas");
    ck_assert_ptr_null(sync->database_name);
    ck_assert_double_eq(sync->client_max_offline_days, 30);
    ck_assert(!sync->recovery_mode_disabled);
    ck_assert_uint_eq(app_config_collection_count(config), 0);
    ck_assert_ptr_null(app_config_default_rule(config));
    ck_assert(app_config_field_is_queryable(config, "Item", "_id"));
    ck_assert(!app_config_field_is_queryable(config, "Item", "owner_id"));
    ck_assert_ptr_null(app_config_indexed_queryable_field(config));
    for (int provider = 0; provider < APP_AUTH_PROVIDER_COUNT; provider++)
        ck_assert(!app_config_provider_enabled(config, provider));
    ck_assert_ptr_null(app_config_custom_user_data(config));
    ck_assert_uint_eq(app_config_warning_count(config), 0);
    app_config_free(config);
    scratch_remove(&app);
}
END_TEST

START_TEST(test_every_sync_setting)
{
    scratch_app app;
    scratch_create(&app);
    scratch_write_minimal(&app);
    scratch_write(&app, "sync/config.json",
                  "{\"type\": \"flexible\", \"state\": \"disabled\","
                  " \"development_mode_enabled\": true, \"service_name\": \"mongodb-atlas\","
                  " \"database_name\": \"todo\", \"client_max_offline_days\": 7.5,"
                  " \"is_recovery_mode_disabled\": true, \"last_disabled\": 1653320842,"
                  " \"queryable_fields_names\": [\"owner_id\"],"
                  " \"indexed_queryable_fields_names\": [\"team\"],"
                  " \"collection_queryable_fields_names\":"
                  " {\"Item\": [\"summary\"], \"Tag\": []}}");
    app_config *config = load_ok(app.path);
    const app_sync_settings *sync = app_config_sync(config);
    ck_assert(!sync->enabled);
    ck_assert(sync->development_mode);
    ck_assert_str_eq(sync->database_name, "todo");
    ck_assert_double_eq(sync->client_max_offline_days, 7.5);
    ck_assert(sync->recovery_mode_disabled);
    ck_assert_str_eq(app_config_indexed_queryable_field(config), "team");
    ck_assert(app_config_field_is_queryable(config, "Item", "team"));
    ck_assert(app_config_field_is_queryable(config, "Item", "owner_id"));
    ck_assert(app_config_field_is_queryable(config, "Item", "summary"));
    ck_assert(!app_config_field_is_queryable(config, "Tag", "summary"));
    ck_assert(app_config_field_is_queryable(config, "Tag", "owner_id"));
    ck_assert(!app_config_field_is_queryable(config, "Item", "summar"));
    app_config_free(config);
    scratch_remove(&app);
}
END_TEST

/* root_config.json wins over realm_config.json; the client App ID then
 * comes from the CLI's metadata. */
START_TEST(test_root_config_and_metadata)
{
    scratch_app app;
    scratch_copy_export(&app, "edge-server");
    scratch_write(&app, "realm_config.json", "{\"name\": \"older\", \"app_id\": \"older-abcde\"}");
    scratch_write(&app, ".mdb/meta.json",
                  "{\"config_version\": 20230101, \"app_id\": \"42249d526d97af5a287c1eae\","
                  " \"group_id\": \"4b2cf422930196872221a2d4\","
                  " \"client_app_id\": \"edge-abcde\"}");
    app_config *config = load_ok(app.path);
    ck_assert_str_eq(app_config_name(config), "template-edge-server");
    ck_assert_str_eq(app_config_app_id(config), "edge-abcde");
    app_config_free(config);
    scratch_remove(&app);
}
END_TEST

/* A collection is named by its schema's title, else by its directory; a
 * directory with none of the collection files is not a collection. */
START_TEST(test_collection_names_and_files)
{
    scratch_app app;
    scratch_create(&app);
    scratch_write_minimal(&app);
    scratch_write(&app, "data_sources/mongodb-atlas/shop/orders/schema.json",
                  "{\"title\": \"Order\", \"bsonType\": \"object\","
                  " \"properties\": {\"_id\": {\"bsonType\": \"objectId\"}}}");
    scratch_write(&app, "data_sources/mongodb-atlas/shop/Customer/schema.json",
                  "{\"bsonType\": \"object\","
                  " \"properties\": {\"_id\": {\"bsonType\": \"string\"}}}");
    scratch_write(&app, "data_sources/mongodb-atlas/shop/Note/rules.json", "{\"roles\": []}");
    scratch_write(&app, "data_sources/mongodb-atlas/shop/empty/README", "not a collection");
    scratch_write(&app, "data_sources/mongodb-atlas/archive/Log/relationships.json", "{}");
    app_config *config = load_ok(app.path);
    ck_assert_uint_eq(app_config_collection_count(config), 4);
    const char *expected[] = {"archive/Log: relationships", "shop/Customer: schema",
                              "shop/Note: rules", "shop/Order: schema"};
    for (size_t i = 0; i < 4; i++) {
        char description[256];
        describe_collection(app_config_collection_at(config, i), description, sizeof description);
        ck_assert_str_eq(description, expected[i]);
    }
    ck_assert_ptr_null(app_config_find_collection(config, "orders"));
    app_config_free(config);
    scratch_remove(&app);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Warnings                                                                 */

START_TEST(test_warnings_for_every_ignored_part)
{
    scratch_app app;
    scratch_copy_export(&app, "read-and-write-own-data");
    scratch_write(&app, "auth/providers.json",
                  "{\"anon-user\": {\"name\": \"anon-user\", \"type\": \"anon-user\"},"
                  " \"custom-token\": {\"name\": \"custom-token\", \"type\": \"custom-token\","
                  " \"disabled\": false},"
                  " \"oauth2-google\": {\"name\": \"oauth2-google\", \"type\": \"oauth2-google\","
                  " \"disabled\": true}}");
    scratch_write(&app, "data_sources/analytics/config.json",
                  "{\"name\": \"analytics\", \"type\": \"datalake\"}");
    scratch_write(&app, "environments/production.json", "{\"values\": {\"region\": \"eu\"}}");
    scratch_write(&app, "functions/config.json", "[{\"name\": \"a\"}, {\"name\": \"b\"}]");
    scratch_write(&app, "graphql/custom_resolvers/mutation_resetAll.json", "{}");
    scratch_write(&app, "hosting/config.json", "{\"enabled\": true}");
    scratch_write(&app, "http_endpoints/config.json", "[{\"route\": \"/a\"}]");
    scratch_write(&app, "https_endpoints/config.json",
                  "[{\"route\": \"/a\"}, {\"route\": \"/b\"}]");
    scratch_write(&app, "log_forwarders/errors.json", "{}");
    scratch_write(&app, "services/twilio/config.json", "{}");
    scratch_write(&app, "triggers/a.json", "{}");
    scratch_write(&app, "triggers/b.json", "{}");
    scratch_write(&app, "triggers/.hidden.json", "{}");
    scratch_write(&app, "triggers/notes.txt", "not a trigger");
    scratch_write(&app, "values/apiUrl.json", "{}");
    app_config *config = load_ok(app.path);
    const char *expected[] = {
        "auth/providers.json: \"custom-token\": provider type \"custom-token\" is not supported "
        "by realmfs-server",
        "data_sources/analytics/: only the synced data source \"mongodb-atlas\" is served by "
        "realmfs-server",
        "environments/: 1 environment with values is not applied by realmfs-server",
        "functions/: 2 functions are not run by realmfs-server",
        "graphql/custom_resolvers/: 1 custom resolver is not run by realmfs-server",
        "hosting/: 1 hosted website is not served by realmfs-server",
        "http_endpoints/: 1 HTTPS endpoint is not served by realmfs-server",
        "https_endpoints/: 2 HTTPS endpoints are not served by realmfs-server",
        "log_forwarders/: 1 log forwarder is not run by realmfs-server",
        "services/: 1 third-party service is not run by realmfs-server",
        "triggers/: 2 triggers are not run by realmfs-server",
        "values/: 1 value is not read by realmfs-server",
    };
    assert_warnings(config, expected, sizeof expected / sizeof expected[0]);
    ck_assert(app_config_provider_enabled(config, APP_AUTH_ANONYMOUS));
    app_config_free(config);
    scratch_remove(&app);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Broken files                                                             */

START_TEST(test_invalid_json_names_the_line)
{
    assert_broken_sync_config("{\n  \"type\": \"flexible\",\n  \"state\": enabled\n}\n",
                              "sync/config.json: line 3, column 18: invalid JSON: invalid token "
                              "near 'enabled'");
    assert_broken_sync_config("{\"type\": \"flexible\", \"type\": \"flexible\"}",
                              "sync/config.json: line 1, column 27: invalid JSON: duplicate "
                              "object key near '\"type\"'");
    assert_broken_sync_config("", "sync/config.json: line 1, column 0: invalid JSON: '[' or '{' "
                                  "expected near end of file");
    assert_broken_export("tiered", "data_sources/mongodb-atlas/default_rule.json", "{\"roles\": [}",
                         -EINVAL,
                         "data_sources/mongodb-atlas/default_rule.json: line 1, column 12: "
                         "invalid JSON: unexpected token near '}'");
}
END_TEST

START_TEST(test_sync_type_must_be_flexible)
{
    assert_broken_sync_config("{\"type\": \"partition\"}",
                              "sync/config.json: \"type\": expected \"flexible\", found "
                              "\"partition\"");
    assert_broken_sync_config("{\"state\": \"enabled\"}",
                              "sync/config.json: \"type\": required key is missing");
    assert_broken_sync_config("{\"type\": [\"flexible\"]}",
                              "sync/config.json: \"type\": expected a string, found an array");
}
END_TEST

START_TEST(test_sync_settings_of_the_wrong_type)
{
    assert_broken_sync_config("{\"type\": \"flexible\", \"state\": \"paused\"}",
                              "sync/config.json: \"state\": expected \"enabled\" or \"disabled\", "
                              "found \"paused\"");
    assert_broken_sync_config("{\"type\": \"flexible\", \"development_mode_enabled\": \"yes\"}",
                              "sync/config.json: \"development_mode_enabled\": expected a boolean, "
                              "found a string");
    assert_broken_sync_config("{\"type\": \"flexible\", \"client_max_offline_days\": \"30\"}",
                              "sync/config.json: \"client_max_offline_days\": expected a number, "
                              "found a string");
    assert_broken_sync_config("{\"type\": \"flexible\", \"is_recovery_mode_disabled\": null}",
                              "sync/config.json: \"is_recovery_mode_disabled\": expected a "
                              "boolean, found null");
    assert_broken_sync_config("{\"type\": \"flexible\", \"database_name\": 5}",
                              "sync/config.json: \"database_name\": expected a string, found a "
                              "number");
    assert_broken_sync_config("[]", "sync/config.json: expected an object, found an array");
}
END_TEST

START_TEST(test_queryable_fields_must_be_strings)
{
    assert_broken_sync_config("{\"type\": \"flexible\", \"queryable_fields_names\": [\"_id\", 5]}",
                              "sync/config.json: \"queryable_fields_names\"[1]: expected a string, "
                              "found a number");
    assert_broken_sync_config("{\"type\": \"flexible\", \"queryable_fields_names\": \"owner_id\"}",
                              "sync/config.json: \"queryable_fields_names\": expected an array, "
                              "found a string");
    assert_broken_sync_config("{\"type\": \"flexible\","
                              " \"indexed_queryable_fields_names\": [\"a\", \"b\"]}",
                              "sync/config.json: \"indexed_queryable_fields_names\": expected at "
                              "most one field, found 2");
    assert_broken_sync_config("{\"type\": \"flexible\","
                              " \"indexed_queryable_fields_names\": [true]}",
                              "sync/config.json: \"indexed_queryable_fields_names\"[0]: expected "
                              "a string, found a boolean");
    assert_broken_sync_config("{\"type\": \"flexible\","
                              " \"collection_queryable_fields_names\": {\"Item\": [\"a\", {}]}}",
                              "sync/config.json: "
                              "\"collection_queryable_fields_names\".\"Item\"[1]: expected a "
                              "string, found an object");
    assert_broken_sync_config("{\"type\": \"flexible\","
                              " \"collection_queryable_fields_names\": {\"Item\": \"a\"}}",
                              "sync/config.json: \"collection_queryable_fields_names\".\"Item\": "
                              "expected an array, found a string");
    assert_broken_sync_config("{\"type\": \"flexible\","
                              " \"collection_queryable_fields_names\": [\"a\"]}",
                              "sync/config.json: \"collection_queryable_fields_names\": expected "
                              "an object, found an array");
}
END_TEST

START_TEST(test_required_files)
{
    assert_broken_export("sync-todo", "sync/config.json", NULL, -ENOENT,
                         "sync/config.json: required file is missing");
    assert_broken_export("sync-todo", "realm_config.json", NULL, -ENOENT,
                         "root_config.json: required file is missing (older exports name it "
                         "realm_config.json)");
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/config.json", NULL, -ENOENT,
                         "data_sources/mongodb-atlas/config.json: required file is missing");
    assert_broken_export("sync-todo", "data_sources", NULL, -ENOENT,
                         "sync/config.json: \"service_name\": no data source directory "
                         "data_sources/mongodb-atlas/");
    assert_broken_export("sync-todo", "sync/config.json",
                         "{\"type\": \"flexible\", \"service_name\": \"Cluster1\"}", -ENOENT,
                         "sync/config.json: \"service_name\": no data source directory "
                         "data_sources/Cluster1/");
    assert_load_fails("/nonexistent/realmfs-app", -ENOENT,
                      "/nonexistent/realmfs-app: No such file or directory");
}
END_TEST

START_TEST(test_app_file_keys)
{
    assert_broken_export("sync-todo", "realm_config.json", "{\"app_id\": \"todo-sync-xbrma\"}",
                         -EINVAL, "realm_config.json: \"name\": required key is missing");
    assert_broken_export("edge-server", "root_config.json", "{\"name\": 5}", -EINVAL,
                         "root_config.json: \"name\": expected a string, found a number");
    assert_broken_export("sync-todo", "realm_config.json", "{\"name\": \"a\", \"app_id\": 1}",
                         -EINVAL,
                         "realm_config.json: \"app_id\": expected a string, found a number");
    assert_broken_export("edge-server", ".mdb/meta.json", "{\"client_app_id\": false}", -EINVAL,
                         ".mdb/meta.json: \"client_app_id\": expected a string, found a boolean");
}
END_TEST

START_TEST(test_schema_must_pass_schema_check)
{
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/todo/Item/schema.json",
                         "{\"bsonType\": \"object\", \"title\": \"Item\","
                         " \"properties\": {\"owner_id\": {\"bsonType\": \"strng\"}}}",
                         -EINVAL,
                         "data_sources/mongodb-atlas/todo/Item/schema.json: properties.owner_id: "
                         "unknown bsonType \"strng\"");
    assert_broken_export("tiered", "data_sources/mongodb-atlas/Item/Item/schema.json", "[]",
                         -EINVAL,
                         "data_sources/mongodb-atlas/Item/Item/schema.json: expected an object, "
                         "found an array");
}
END_TEST

START_TEST(test_rules_and_relationships_must_be_objects)
{
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/todo/Item/rules.json",
                         "[{\"name\": \"owner\"}]", -EINVAL,
                         "data_sources/mongodb-atlas/todo/Item/rules.json: expected an object, "
                         "found an array");
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/todo/Item/relationships.json",
                         "null", -EINVAL,
                         "data_sources/mongodb-atlas/todo/Item/relationships.json: line 1, "
                         "column 4: invalid JSON: '[' or '{' expected near 'null'");
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/default_rule.json", "[]",
                         -EINVAL,
                         "data_sources/mongodb-atlas/default_rule.json: expected an object, found "
                         "an array");
}
END_TEST

START_TEST(test_synced_data_source)
{
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/config.json",
                         "{\"name\": \"mongodb-atlas\", \"type\": \"datalake\"}", -EINVAL,
                         "data_sources/mongodb-atlas/config.json: \"type\": expected "
                         "\"mongodb-atlas\", found \"datalake\"");
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/config.json",
                         "{\"name\": \"Cluster0\", \"type\": \"mongodb-atlas\"}", -EINVAL,
                         "data_sources/mongodb-atlas/config.json: \"name\": expected "
                         "\"mongodb-atlas\" (the directory name), found \"Cluster0\"");
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/config.json",
                         "{\"type\": \"mongodb-atlas\"}", -EINVAL,
                         "data_sources/mongodb-atlas/config.json: \"name\": required key is "
                         "missing");
}
END_TEST

/* Object types share one namespace in Flexible Sync, whatever their
 * database. */
START_TEST(test_collection_names_are_unique)
{
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/todo_archive/Item/rules.json",
                         "{\"roles\": []}", -EINVAL,
                         "data_sources/mongodb-atlas/todo_archive/Item: collection \"Item\" is "
                         "already defined in database \"todo\"");
    assert_broken_export("sync-todo", "data_sources/mongodb-atlas/todo/Items/schema.json",
                         "{\"title\": \"Item\"}", -EINVAL,
                         "data_sources/mongodb-atlas/todo/Items/schema.json: collection \"Item\" "
                         "is already defined in database \"todo\"");
}
END_TEST

START_TEST(test_providers)
{
    assert_broken_export("sync-todo", "auth/providers.json",
                         "[{\"name\": \"anon-user\", \"type\": \"anon-user\"}]", -EINVAL,
                         "auth/providers.json: expected an object, found an array");
    assert_broken_export("sync-todo", "auth/providers.json", "{\"anon-user\": true}", -EINVAL,
                         "auth/providers.json: \"anon-user\": expected an object, found a "
                         "boolean");
    assert_broken_export("sync-todo", "auth/providers.json",
                         "{\"anon-user\": {\"type\": \"anon-user\", \"disabled\": \"no\"}}",
                         -EINVAL,
                         "auth/providers.json: \"anon-user\".\"disabled\": expected a boolean, "
                         "found a string");
    assert_broken_export("sync-todo", "auth/providers.json",
                         "{\"anon-user\": {\"name\": \"anon-user\"}}", -EINVAL,
                         "auth/providers.json: \"anon-user\".\"type\": required key is missing");
}
END_TEST

START_TEST(test_custom_user_data)
{
    assert_broken_export("tiered", "auth/custom_user_data.json",
                         "{\"enabled\": true, \"database_name\": \"Item\","
                         " \"user_id_field\": \"_id\"}",
                         -EINVAL,
                         "auth/custom_user_data.json: \"collection_name\": required key is "
                         "missing");
    assert_broken_export("tiered", "auth/custom_user_data.json",
                         "{\"enabled\": true, \"mongo_service_name\": \"other\","
                         " \"database_name\": \"Item\", \"collection_name\": \"User\","
                         " \"user_id_field\": \"_id\"}",
                         -EINVAL,
                         "auth/custom_user_data.json: \"mongo_service_name\": expected "
                         "\"mongodb-atlas\" (the synced data source), found \"other\"");
    assert_broken_export("tiered", "auth/custom_user_data.json", "{\"enabled\": 1}", -EINVAL,
                         "auth/custom_user_data.json: \"enabled\": expected a boolean, found a "
                         "number");

    scratch_app app;
    scratch_copy_export(&app, "tiered");
    scratch_write(&app, "auth/custom_user_data.json",
                  "{\"enabled\": false, \"database_name\": 5}");
    app_config *config = load_ok(app.path);
    ck_assert_ptr_null(app_config_custom_user_data(config));
    app_config_free(config);
    scratch_remove(&app);
}
END_TEST

START_TEST(test_ignored_parts_must_still_parse)
{
    assert_broken_export("tiered", "functions/config.json", "{\"name\": \"resetFunc\"}", -EINVAL,
                         "functions/config.json: expected an array, found an object");
    assert_broken_export("tiered", "environments/qa.json", "{\"values\": {}", -EINVAL,
                         "environments/qa.json: line 1, column 13: invalid JSON: '}' expected "
                         "near end of file");
}
END_TEST

START_TEST(test_message_buffers)
{
    scratch_app app;
    scratch_copy_export(&app, "sync-todo");
    scratch_write(&app, "sync/config.json", "{\"type\": \"partition\"}");
    app_config *config = (app_config *)&config; /* not NULL, to see the load clear it */
    ck_assert_int_eq(app_config_load(app.path, &config, NULL, 0), -EINVAL);
    ck_assert_ptr_null(config);
    char message[12];
    ck_assert_int_eq(app_config_load(app.path, &config, message, sizeof message), -EINVAL);
    ck_assert_str_eq(message, "sync/config");
    char tiny[1] = "x";
    ck_assert_int_eq(app_config_load(app.path, &config, tiny, sizeof tiny), -EINVAL);
    ck_assert_str_eq(tiny, "");
    scratch_remove(&app);
    app_config_free(NULL);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("app_config");
    TCase *exports = tcase_create("exports");
    tcase_add_test(exports, test_every_export_loads);
    tcase_add_loop_test(exports, test_known_export, 0,
                        sizeof expected_apps / sizeof expected_apps[0]);
    tcase_add_test(exports, test_collection_documents_are_kept);
    suite_add_tcase(suite, exports);

    TCase *variants = tcase_create("variants");
    tcase_add_test(variants, test_minimal_app_takes_defaults);
    tcase_add_test(variants, test_every_sync_setting);
    tcase_add_test(variants, test_root_config_and_metadata);
    tcase_add_test(variants, test_collection_names_and_files);
    tcase_add_test(variants, test_warnings_for_every_ignored_part);
    suite_add_tcase(suite, variants);

    TCase *broken = tcase_create("broken");
    tcase_add_test(broken, test_invalid_json_names_the_line);
    tcase_add_test(broken, test_sync_type_must_be_flexible);
    tcase_add_test(broken, test_sync_settings_of_the_wrong_type);
    tcase_add_test(broken, test_queryable_fields_must_be_strings);
    tcase_add_test(broken, test_required_files);
    tcase_add_test(broken, test_app_file_keys);
    tcase_add_test(broken, test_schema_must_pass_schema_check);
    tcase_add_test(broken, test_rules_and_relationships_must_be_objects);
    tcase_add_test(broken, test_synced_data_source);
    tcase_add_test(broken, test_collection_names_are_unique);
    tcase_add_test(broken, test_providers);
    tcase_add_test(broken, test_custom_user_data);
    tcase_add_test(broken, test_ignored_parts_must_still_parse);
    tcase_add_test(broken, test_message_buffers);
    suite_add_tcase(suite, broken);
    return suite;
}

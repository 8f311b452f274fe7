/*
 * app_config.c — reading an App Services app export.  See app_config.h for
 * the contract and docs/configuration.md for the files and keys.
 *
 * Every file is opened relative to a descriptor of the app directory, so
 * paths in messages are the paths that were opened.  String settings point
 * into the parsed JSON documents, which the app_config keeps.
 */
#include "realmfs/app_config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "realmfs/schema.h"

#define APP_CONFIG_DEFAULT_SERVICE_NAME "mongodb-atlas"
#define APP_CONFIG_DEFAULT_MAX_OFFLINE_DAYS 30.0
#define APP_CONFIG_SYNCED_SOURCE_TYPE "mongodb-atlas"

/* Long enough for any realistic key path; a longer one is cut short, which
 * only shortens the message. */
#define APP_CONFIG_KEY_PATH_MAX 512

/* A growing list of owned strings: warnings, and directory listings. */
typedef struct app_config_strings {
    char **items;
    size_t count;
    size_t capacity;
} app_config_strings;

struct app_config {
    json_t *app_document;      /* root_config.json or realm_config.json */
    json_t *metadata_document; /* .mdb/meta.json; NULL when not read */
    json_t *sync_document;
    json_t *custom_user_data_document;
    json_t *default_rule;
    const char *name;
    const char *app_id;
    app_sync_settings sync;
    json_t *queryable_fields;                  /* array of strings or NULL; owned */
    const json_t *collection_queryable_fields; /* object of such arrays or NULL */
    const char *indexed_queryable_field;
    /* Each collection is allocated apart, so that a pointer to it stays
     * valid when more are added.  Strings owned, JSON referenced. */
    app_collection **collections;
    size_t collection_count;
    size_t collection_capacity;
    bool provider_enabled[APP_AUTH_PROVIDER_COUNT];
    bool custom_user_data_enabled;
    app_custom_user_data custom_user_data;
    app_config_strings warnings;
};

/* The state of one load: where files are read from, what is being built,
 * and where the message goes. */
typedef struct app_config_loader {
    int directory_fd;
    app_config *config;
    char *message;
    size_t message_size;
} app_config_loader;

/* The JSON types the export format asks for; a number is an integer or a
 * real. */
typedef enum app_config_kind {
    APP_CONFIG_OBJECT,
    APP_CONFIG_ARRAY,
    APP_CONFIG_STRING,
    APP_CONFIG_NUMBER,
    APP_CONFIG_BOOLEAN,
} app_config_kind;

typedef enum app_config_entry_kind {
    APP_CONFIG_DIRECTORIES,
    APP_CONFIG_JSON_FILES,
} app_config_entry_kind;

typedef struct app_config_provider_type {
    const char *type;
    app_auth_provider provider;
} app_config_provider_type;

static const app_config_provider_type app_config_provider_types[] = {
    {"anon-user", APP_AUTH_ANONYMOUS},
    {"local-userpass", APP_AUTH_USER_PASSWORD},
    {"api-key", APP_AUTH_API_KEY},
};

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

/* Writes "<file>: <problem>" as the load's message and returns error. */
__attribute__((format(printf, 4, 5)))
static int app_config_fail(const app_config_loader *loader, int error, const char *file,
                           const char *format, ...)
{
    if (loader->message_size == 0)
        return error;
    int prefix_length = snprintf(loader->message, loader->message_size, "%s: ", file);
    if (prefix_length < 0 || (size_t)prefix_length >= loader->message_size)
        return error;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(loader->message + prefix_length, loader->message_size - (size_t)prefix_length,
              format, arguments);
    va_end(arguments);
    return error;
}

/* errno as the result and the message, read before anything can change it. */
static int app_config_fail_errno(const app_config_loader *loader, const char *file)
{
    int error = errno;
    return app_config_fail(loader, -error, file, "%s", strerror(error));
}

static const char *app_config_kind_name(app_config_kind kind)
{
    switch (kind) {
    case APP_CONFIG_OBJECT:
        return "an object";
    case APP_CONFIG_ARRAY:
        return "an array";
    case APP_CONFIG_STRING:
        return "a string";
    case APP_CONFIG_NUMBER:
        return "a number";
    case APP_CONFIG_BOOLEAN:
        return "a boolean";
    }
    return "a JSON value";
}

static bool app_config_is_kind(const json_t *value, app_config_kind kind)
{
    switch (kind) {
    case APP_CONFIG_OBJECT:
        return json_is_object(value);
    case APP_CONFIG_ARRAY:
        return json_is_array(value);
    case APP_CONFIG_STRING:
        return json_is_string(value);
    case APP_CONFIG_NUMBER:
        return json_is_number(value);
    case APP_CONFIG_BOOLEAN:
        return json_is_boolean(value);
    }
    return false;
}

/* What a value is, in the words app_config_kind_name uses for what was
 * expected. */
static const char *app_config_describe(const json_t *value)
{
    static const app_config_kind kinds[] = {APP_CONFIG_OBJECT, APP_CONFIG_ARRAY, APP_CONFIG_STRING,
                                            APP_CONFIG_NUMBER, APP_CONFIG_BOOLEAN};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (app_config_is_kind(value, kinds[i]))
            return app_config_kind_name(kinds[i]);
    }
    return "null";
}

/* A key path as messages show it: "key" at the top of a file, else
 * parent."key".  A path too long for the buffer ends in "...", so that a
 * message never passes a cut path off as a whole one. */
static void app_config_key_path(char *path, size_t size, const char *parent, const char *key)
{
    static const char ellipsis[] = "...";
    int length = parent == NULL ? snprintf(path, size, "\"%s\"", key)
                                : snprintf(path, size, "%s.\"%s\"", parent, key);
    if (length >= 0 && (size_t)length >= size && size >= sizeof ellipsis)
        memcpy(path + size - sizeof ellipsis, ellipsis, sizeof ellipsis);
}

/* Formats a path of the export into path; a path longer than the buffer is
 * an error rather than a different file. */
__attribute__((format(printf, 4, 5)))
static int app_config_format_path(const app_config_loader *loader, char *path, size_t size,
                                  const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(path, size, format, arguments);
    va_end(arguments);
    if (length < 0 || (size_t)length >= size)
        return app_config_fail(loader, -ENAMETOOLONG, path, "path is too long");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Growing arrays                                                           */

/* Returns items with room for one more than count (doubling the capacity),
 * or NULL when memory runs out, items then being unchanged. */
static void *app_config_grow(void *items, size_t *capacity, size_t count, size_t item_size)
{
    if (count < *capacity)
        return items;
    size_t new_capacity = *capacity == 0 ? 8 : *capacity * 2;
    void *grown = reallocarray(items, new_capacity, item_size);
    if (grown != NULL)
        *capacity = new_capacity;
    return grown;
}

/* Appends text, which the list then owns; on failure text is freed. */
static int app_config_strings_append(app_config_strings *strings, char *text)
{
    char **items = app_config_grow(strings->items, &strings->capacity, strings->count,
                                   sizeof *strings->items);
    if (items == NULL) {
        free(text);
        return -ENOMEM;
    }
    strings->items = items;
    strings->items[strings->count++] = text;
    return 0;
}

static void app_config_strings_clear(app_config_strings *strings)
{
    for (size_t i = 0; i < strings->count; i++)
        free(strings->items[i]);
    free(strings->items);
    *strings = (app_config_strings){0};
}

__attribute__((format(printf, 2, 3)))
static int app_config_warn(app_config_loader *loader, const char *format, ...)
{
    char *warning;
    va_list arguments;
    va_start(arguments, format);
    int length = vasprintf(&warning, format, arguments);
    va_end(arguments);
    if (length < 0)
        return -ENOMEM;
    return app_config_strings_append(&loader->config->warnings, warning);
}

/* ------------------------------------------------------------------------ */
/* Files and directories                                                    */

static int app_config_parse_open_file(const app_config_loader *loader, int fd, const char *file,
                                      app_config_kind kind, json_t **document)
{
    struct stat status;
    if (fstat(fd, &status) != 0)
        return app_config_fail_errno(loader, file);
    if (!S_ISREG(status.st_mode))
        return app_config_fail(loader, -EINVAL, file, "not a regular file");
    json_error_t error;
    json_t *parsed = json_loadfd(fd, JSON_REJECT_DUPLICATES, &error);
    if (parsed == NULL && json_error_code(&error) == json_error_out_of_memory)
        return app_config_fail(loader, -ENOMEM, file, "out of memory");
    if (parsed == NULL)
        return app_config_fail(loader, -EINVAL, file, "line %d, column %d: invalid JSON: %s",
                               error.line, error.column, error.text);
    if (!app_config_is_kind(parsed, kind)) {
        app_config_fail(loader, -EINVAL, file, "expected %s, found %s",
                        app_config_kind_name(kind), app_config_describe(parsed));
        json_decref(parsed);
        return -EINVAL;
    }
    *document = parsed;
    return 0;
}

/* Parses a file of the export whose top level must be of kind.  An absent
 * optional file gives 0 and *document NULL. */
static int app_config_read_json(const app_config_loader *loader, const char *file,
                                app_config_kind kind, bool required, json_t **document)
{
    *document = NULL;
    int fd = openat(loader->directory_fd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && !required)
        return 0;
    if (fd < 0 && errno == ENOENT)
        return app_config_fail(loader, -ENOENT, file, "required file is missing");
    if (fd < 0)
        return app_config_fail_errno(loader, file);
    int result = app_config_parse_open_file(loader, fd, file, kind, document);
    close(fd);
    return result;
}

static bool app_config_is_json_file_name(const char *name)
{
    size_t length = strlen(name);
    return length > strlen(".json") && strcmp(name + length - strlen(".json"), ".json") == 0;
}

static bool app_config_entry_matches(DIR *stream, const char *name, app_config_entry_kind kind)
{
    struct stat status;
    if (name[0] == '.' || fstatat(dirfd(stream), name, &status, 0) != 0)
        return false;
    if (kind == APP_CONFIG_DIRECTORIES)
        return S_ISDIR(status.st_mode);
    return S_ISREG(status.st_mode) && app_config_is_json_file_name(name);
}

static int app_config_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int app_config_read_entries(const app_config_loader *loader, DIR *stream,
                                   const char *directory, app_config_entry_kind kind,
                                   app_config_strings *names)
{
    errno = 0;
    for (struct dirent *entry; (entry = readdir(stream)) != NULL; errno = 0) {
        if (!app_config_entry_matches(stream, entry->d_name, kind))
            continue;
        char *name = strdup(entry->d_name);
        if (name == NULL || app_config_strings_append(names, name) != 0)
            return app_config_fail(loader, -ENOMEM, directory, "out of memory");
    }
    if (errno != 0)
        return app_config_fail_errno(loader, directory);
    return 0;
}

/* The subdirectories, or the *.json files, of a directory of the export,
 * without hidden entries.  Sorted, so that collections and warnings come
 * out in the same order on every file system.  A missing directory has no
 * entries.  On failure names is left empty. */
static int app_config_list(const app_config_loader *loader, const char *directory,
                           app_config_entry_kind kind, app_config_strings *names)
{
    *names = (app_config_strings){0};
    int fd = openat(loader->directory_fd, directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return app_config_fail_errno(loader, directory);
    DIR *stream = fdopendir(fd);
    if (stream == NULL) {
        int result = app_config_fail_errno(loader, directory);
        close(fd);
        return result;
    }
    int result = app_config_read_entries(loader, stream, directory, kind, names);
    closedir(stream);
    if (result != 0) {
        app_config_strings_clear(names);
        return result;
    }
    if (names->count > 1)
        qsort(names->items, names->count, sizeof *names->items, app_config_compare_names);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */

/* The value of key in object (at key path parent of file, NULL for the top
 * level) when it is of kind.  An absent optional key gives 0 and *value
 * NULL. */
static int app_config_member(const app_config_loader *loader, const char *file,
                             const char *parent, const json_t *object, const char *key,
                             app_config_kind kind, bool required, json_t **value)
{
    *value = json_object_get(object, key);
    if (*value == NULL && !required)
        return 0;
    char path[APP_CONFIG_KEY_PATH_MAX];
    app_config_key_path(path, sizeof path, parent, key);
    if (*value == NULL)
        return app_config_fail(loader, -EINVAL, file, "%s: required key is missing", path);
    if (!app_config_is_kind(*value, kind))
        return app_config_fail(loader, -EINVAL, file, "%s: expected %s, found %s", path,
                               app_config_kind_name(kind), app_config_describe(*value));
    return 0;
}

/* A string key; *text is left unchanged when an optional key is absent,
 * so it may hold the default. */
static int app_config_string_member(const app_config_loader *loader, const char *file,
                                    const char *parent, const json_t *object, const char *key,
                                    bool required, const char **text)
{
    json_t *value;
    int result = app_config_member(loader, file, parent, object, key, APP_CONFIG_STRING,
                                   required, &value);
    if (result == 0 && value != NULL)
        *text = json_string_value(value);
    return result;
}

/* An optional boolean key; *flag keeps its default when the key is absent. */
static int app_config_boolean_member(const app_config_loader *loader, const char *file,
                                     const char *parent, const json_t *object, const char *key,
                                     bool *flag)
{
    json_t *value;
    int result = app_config_member(loader, file, parent, object, key, APP_CONFIG_BOOLEAN,
                                   false, &value);
    if (result == 0 && value != NULL)
        *flag = json_is_true(value);
    return result;
}

/* An optional number key; *number keeps its default when the key is absent. */
static int app_config_number_member(const app_config_loader *loader, const char *file,
                                    const json_t *object, const char *key, double *number)
{
    json_t *value;
    int result = app_config_member(loader, file, NULL, object, key, APP_CONFIG_NUMBER, false,
                                   &value);
    if (result == 0 && value != NULL)
        *number = json_number_value(value);
    return result;
}

/* An optional key holding an array of strings; NULL when absent. */
static int app_config_string_list_member(const app_config_loader *loader, const char *file,
                                         const char *parent, const json_t *object,
                                         const char *key, json_t **list)
{
    int result = app_config_member(loader, file, parent, object, key, APP_CONFIG_ARRAY, false,
                                   list);
    if (result != 0 || *list == NULL)
        return result;
    char path[APP_CONFIG_KEY_PATH_MAX];
    app_config_key_path(path, sizeof path, parent, key);
    size_t index;
    const json_t *element;
    json_array_foreach(*list, index, element) {
        if (!json_is_string(element))
            return app_config_fail(loader, -EINVAL, file, "%s[%zu]: expected a string, found %s",
                                   path, index, app_config_describe(element));
    }
    return 0;
}

static bool app_config_list_contains(const json_t *list, const char *text)
{
    size_t index;
    const json_t *element;
    json_array_foreach(list, index, element) {
        if (strcmp(json_string_value(element), text) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* The app: name and App ID                                                 */

/* root_config.json is the current name of the file, realm_config.json the
 * name in exports of config_version 20210101; the newer one wins. */
static int app_config_read_app_file(app_config_loader *loader, const char **file)
{
    app_config *config = loader->config;
    *file = "root_config.json";
    int result = app_config_read_json(loader, *file, APP_CONFIG_OBJECT, false,
                                      &config->app_document);
    if (result != 0 || config->app_document != NULL)
        return result;
    *file = "realm_config.json";
    result = app_config_read_json(loader, *file, APP_CONFIG_OBJECT, false, &config->app_document);
    if (result != 0 || config->app_document != NULL)
        return result;
    return app_config_fail(loader, -ENOENT, "root_config.json",
                           "required file is missing (older exports name it realm_config.json)");
}

/* Newer exports keep the client App ID out of root_config.json: the CLI
 * writes it to .mdb/meta.json, whose "app_id" is the internal ObjectId. */
static int app_config_load_metadata(app_config_loader *loader)
{
    static const char file[] = ".mdb/meta.json";
    app_config *config = loader->config;
    int result = app_config_read_json(loader, file, APP_CONFIG_OBJECT, false,
                                      &config->metadata_document);
    if (result != 0 || config->metadata_document == NULL)
        return result;
    return app_config_string_member(loader, file, NULL, config->metadata_document,
                                    "client_app_id", false, &config->app_id);
}

static int app_config_load_identity(app_config_loader *loader)
{
    app_config *config = loader->config;
    const char *file;
    int result = app_config_read_app_file(loader, &file);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, config->app_document, "name", true,
                                          &config->name);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, config->app_document, "app_id",
                                          false, &config->app_id);
    if (result == 0 && config->app_id == NULL)
        result = app_config_load_metadata(loader);
    return result;
}

/* ------------------------------------------------------------------------ */
/* sync/config.json                                                         */

static const char app_config_sync_file[] = "sync/config.json";

static int app_config_check_sync_type(const app_config_loader *loader, const json_t *document)
{
    const char *type = NULL;
    int result = app_config_string_member(loader, app_config_sync_file, NULL, document, "type",
                                          true, &type);
    if (result == 0 && strcmp(type, "flexible") != 0)
        return app_config_fail(loader, -EINVAL, app_config_sync_file,
                               "\"type\": expected \"flexible\", found \"%s\"", type);
    return result;
}

static int app_config_read_sync_state(const app_config_loader *loader, const json_t *document,
                                      bool *enabled)
{
    const char *state = "enabled";
    int result = app_config_string_member(loader, app_config_sync_file, NULL, document, "state",
                                          false, &state);
    if (result != 0)
        return result;
    if (strcmp(state, "enabled") != 0 && strcmp(state, "disabled") != 0)
        return app_config_fail(loader, -EINVAL, app_config_sync_file,
                               "\"state\": expected \"enabled\" or \"disabled\", found \"%s\"",
                               state);
    *enabled = strcmp(state, "enabled") == 0;
    return 0;
}

static int app_config_read_sync_settings(const app_config_loader *loader, const json_t *document,
                                         app_sync_settings *sync)
{
    const char *file = app_config_sync_file;
    *sync = (app_sync_settings){
        .service_name = APP_CONFIG_DEFAULT_SERVICE_NAME,
        .client_max_offline_days = APP_CONFIG_DEFAULT_MAX_OFFLINE_DAYS,
    };
    int result = app_config_read_sync_state(loader, document, &sync->enabled);
    if (result == 0)
        result = app_config_boolean_member(loader, file, NULL, document,
                                           "development_mode_enabled", &sync->development_mode);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "service_name", false,
                                          &sync->service_name);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "database_name", false,
                                          &sync->database_name);
    if (result == 0)
        result = app_config_number_member(loader, file, document, "client_max_offline_days",
                                          &sync->client_max_offline_days);
    if (result == 0)
        result = app_config_boolean_member(loader, file, NULL, document,
                                           "is_recovery_mode_disabled",
                                           &sync->recovery_mode_disabled);
    return result;
}

/* Flexible Sync allows a single indexed queryable field, though the key
 * holds an array. */
static int app_config_read_indexed_field(app_config_loader *loader, const json_t *document)
{
    json_t *list;
    int result = app_config_string_list_member(loader, app_config_sync_file, NULL, document,
                                               "indexed_queryable_fields_names", &list);
    if (result != 0 || json_array_size(list) == 0)
        return result;
    if (json_array_size(list) > 1)
        return app_config_fail(loader, -EINVAL, app_config_sync_file,
                               "\"indexed_queryable_fields_names\": expected at most one field, "
                               "found %zu",
                               json_array_size(list));
    loader->config->indexed_queryable_field = json_string_value(json_array_get(list, 0));
    return 0;
}

static int app_config_read_collection_fields(app_config_loader *loader, const json_t *document)
{
    static const char key[] = "collection_queryable_fields_names";
    json_t *collections;
    int result = app_config_member(loader, app_config_sync_file, NULL, document, key,
                                   APP_CONFIG_OBJECT, false, &collections);
    if (result != 0 || collections == NULL)
        return result;
    char path[APP_CONFIG_KEY_PATH_MAX];
    app_config_key_path(path, sizeof path, NULL, key);
    /* Each list is looked up again by its collection's name, which puts
     * the name into the key path of a message. */
    const char *collection;
    json_t *listed;
    json_object_foreach(collections, collection, listed) {
        json_t *fields;
        result = app_config_string_list_member(loader, app_config_sync_file, path, collections,
                                               collection, &fields);
        if (result != 0)
            return result;
    }
    loader->config->collection_queryable_fields = collections;
    return 0;
}

static int app_config_read_queryable_fields(app_config_loader *loader, const json_t *document)
{
    json_t *fields;
    int result = app_config_string_list_member(loader, app_config_sync_file, NULL, document,
                                               "queryable_fields_names", &fields);
    if (result != 0)
        return result;
    loader->config->queryable_fields = json_incref(fields);
    result = app_config_read_indexed_field(loader, document);
    if (result == 0)
        result = app_config_read_collection_fields(loader, document);
    return result;
}

static int app_config_load_sync(app_config_loader *loader)
{
    app_config *config = loader->config;
    int result = app_config_read_json(loader, app_config_sync_file, APP_CONFIG_OBJECT, true,
                                      &config->sync_document);
    if (result == 0)
        result = app_config_check_sync_type(loader, config->sync_document);
    if (result == 0)
        result = app_config_read_sync_settings(loader, config->sync_document, &config->sync);
    if (result == 0)
        result = app_config_read_queryable_fields(loader, config->sync_document);
    return result;
}

/* ------------------------------------------------------------------------ */
/* auth/                                                                    */

static const char app_config_providers_file[] = "auth/providers.json";

static const app_config_provider_type *app_config_find_provider_type(const char *type)
{
    for (size_t i = 0; i < sizeof app_config_provider_types / sizeof app_config_provider_types[0];
         i++) {
        if (strcmp(app_config_provider_types[i].type, type) == 0)
            return &app_config_provider_types[i];
    }
    return NULL;
}

static int app_config_read_provider(app_config_loader *loader, const json_t *providers,
                                    const char *name)
{
    const char *file = app_config_providers_file;
    json_t *provider;
    int result = app_config_member(loader, file, NULL, providers, name, APP_CONFIG_OBJECT, true,
                                   &provider);
    if (result != 0)
        return result;
    char path[APP_CONFIG_KEY_PATH_MAX];
    app_config_key_path(path, sizeof path, NULL, name);
    const char *type = NULL;
    bool disabled = false;
    result = app_config_string_member(loader, file, path, provider, "type", true, &type);
    if (result == 0)
        result = app_config_boolean_member(loader, file, path, provider, "disabled", &disabled);
    if (result != 0 || disabled)
        return result;
    const app_config_provider_type *known = app_config_find_provider_type(type);
    if (known == NULL)
        return app_config_warn(loader, "%s: %s: provider type \"%s\" is not supported by "
                               "realmfs-server", file, path, type);
    loader->config->provider_enabled[known->provider] = true;
    return 0;
}

static int app_config_load_providers(app_config_loader *loader)
{
    json_t *providers;
    int result = app_config_read_json(loader, app_config_providers_file, APP_CONFIG_OBJECT, false,
                                      &providers);
    /* Each provider is looked up again by name, as app_config_member puts
     * the name into the key path of a message. */
    const char *name;
    json_t *provider;
    json_object_foreach(providers, name, provider) {
        result = app_config_read_provider(loader, providers, name);
        if (result != 0)
            break;
    }
    json_decref(providers);
    return result;
}

/* Custom user data is looked up in the synced data source, the only one
 * realmfs-server has. */
static int app_config_read_custom_user_data(app_config_loader *loader, const char *file,
                                            const json_t *document)
{
    app_config *config = loader->config;
    app_custom_user_data *data = &config->custom_user_data;
    data->service_name = config->sync.service_name;
    int result = app_config_string_member(loader, file, NULL, document, "mongo_service_name",
                                          false, &data->service_name);
    if (result == 0 && strcmp(data->service_name, config->sync.service_name) != 0)
        return app_config_fail(loader, -EINVAL, file,
                               "\"mongo_service_name\": expected \"%s\" (the synced data source), "
                               "found \"%s\"",
                               config->sync.service_name, data->service_name);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "database_name", true,
                                          &data->database);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "collection_name", true,
                                          &data->collection);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "user_id_field", true,
                                          &data->user_id_field);
    return result;
}

static int app_config_load_custom_user_data(app_config_loader *loader)
{
    static const char file[] = "auth/custom_user_data.json";
    app_config *config = loader->config;
    int result = app_config_read_json(loader, file, APP_CONFIG_OBJECT, false,
                                      &config->custom_user_data_document);
    json_t *document = config->custom_user_data_document;
    if (result != 0 || document == NULL)
        return result;
    result = app_config_boolean_member(loader, file, NULL, document, "enabled",
                                       &config->custom_user_data_enabled);
    if (result != 0 || !config->custom_user_data_enabled)
        return result;
    return app_config_read_custom_user_data(loader, file, document);
}

/* ------------------------------------------------------------------------ */
/* data_sources/                                                            */

/* The JSON files of one collection directory, read before they become an
 * app_collection. */
typedef struct app_config_collection_files {
    char directory[PATH_MAX]; /* data_sources/<service>/<database>/<collection> */
    char schema_file[PATH_MAX];
    json_t *schema;
    json_t *rules;
    json_t *relationships;
} app_config_collection_files;

/* The app_config owns what its collections point to; the public struct
 * shows them as const so that callers cannot change them.  NULL is
 * allowed. */
static void app_config_collection_free(app_collection *collection)
{
    if (collection == NULL)
        return;
    free((char *)collection->name);
    free((char *)collection->database);
    free((char *)collection->directory);
    json_decref((json_t *)collection->schema);
    json_decref((json_t *)collection->relationships);
    json_decref((json_t *)collection->rules);
    free(collection);
}

/* A collection with its strings copied and no JSON; NULL when out of
 * memory. */
static app_collection *app_config_collection_new(const app_config *config, const char *name,
                                                 const char *database, const char *directory)
{
    app_collection *collection = calloc(1, sizeof *collection);
    if (collection == NULL)
        return NULL;
    collection->name = strdup(name);
    collection->database = strdup(database);
    collection->directory = strdup(directory);
    collection->service = config->sync.service_name;
    if (collection->name == NULL || collection->database == NULL
        || collection->directory == NULL) {
        app_config_collection_free(collection);
        return NULL;
    }
    return collection;
}

/* Appends collection, which the app_config then owns; on failure it is
 * freed.  0 or -ENOMEM. */
static int app_config_append_collection(app_config *config, app_collection *collection)
{
    app_collection **collections = app_config_grow(config->collections,
                                                   &config->collection_capacity,
                                                   config->collection_count,
                                                   sizeof *config->collections);
    if (collections == NULL) {
        app_config_collection_free(collection);
        return -ENOMEM;
    }
    config->collections = collections;
    collections[config->collection_count++] = collection;
    return 0;
}

static int app_config_read_collection_file(const app_config_loader *loader,
                                           const char *directory, const char *name,
                                           json_t **document)
{
    char file[PATH_MAX];
    int result = app_config_format_path(loader, file, sizeof file, "%s/%s", directory, name);
    if (result == 0)
        result = app_config_read_json(loader, file, APP_CONFIG_OBJECT, false, document);
    return result;
}

static int app_config_check_schema(const app_config_loader *loader,
                                   const app_config_collection_files *files)
{
    if (files->schema == NULL)
        return 0;
    char problem[512];
    int result = schema_check(files->schema, problem, sizeof problem);
    if (result != 0)
        return app_config_fail(loader, result, files->schema_file, "%s", problem);
    return 0;
}

/* Reads schema.json, rules.json and relationships.json, each optional. */
static int app_config_read_collection_files(const app_config_loader *loader,
                                            app_config_collection_files *files)
{
    int result = app_config_format_path(loader, files->schema_file, sizeof files->schema_file,
                                        "%s/schema.json", files->directory);
    if (result == 0)
        result = app_config_read_json(loader, files->schema_file, APP_CONFIG_OBJECT, false,
                                      &files->schema);
    if (result == 0)
        result = app_config_check_schema(loader, files);
    if (result == 0)
        result = app_config_read_collection_file(loader, files->directory, "rules.json",
                                                 &files->rules);
    if (result == 0)
        result = app_config_read_collection_file(loader, files->directory, "relationships.json",
                                                 &files->relationships);
    return result;
}

/* Flexible Sync names object types, not databases, so a name may be used
 * once across all databases of the data source. */
static int app_config_check_unique_name(const app_config_loader *loader,
                                        const app_config_collection_files *files,
                                        const char *name)
{
    const app_collection *existing = app_config_find_collection(loader->config, name);
    if (existing == NULL)
        return 0;
    const char *where = files->schema != NULL ? files->schema_file : files->directory;
    return app_config_fail(loader, -EINVAL, where,
                           "collection \"%s\" is already defined in database \"%s\"", name,
                           existing->database);
}

static int app_config_add_collection(app_config_loader *loader,
                                     const app_config_collection_files *files, const char *name,
                                     const char *database, const char *directory_name)
{
    app_collection *collection = app_config_collection_new(loader->config, name, database,
                                                           directory_name);
    if (collection == NULL
        || app_config_append_collection(loader->config, collection) != 0)
        return app_config_fail(loader, -ENOMEM, files->directory, "out of memory");
    collection->schema = json_incref(files->schema);
    collection->rules = json_incref(files->rules);
    collection->relationships = json_incref(files->relationships);
    return 0;
}

/* A directory with none of the collection files is not a collection. */
static int app_config_load_collection(app_config_loader *loader, const char *database,
                                      const char *database_directory, const char *directory_name)
{
    app_config_collection_files files = {0};
    int result = app_config_format_path(loader, files.directory, sizeof files.directory, "%s/%s",
                                        database_directory, directory_name);
    if (result == 0)
        result = app_config_read_collection_files(loader, &files);
    bool has_files = files.schema != NULL || files.rules != NULL || files.relationships != NULL;
    if (result == 0 && has_files) {
        const char *title = json_string_value(json_object_get(files.schema, "title"));
        const char *name = title != NULL ? title : directory_name;
        result = app_config_check_unique_name(loader, &files, name);
        if (result == 0)
            result = app_config_add_collection(loader, &files, name, database, directory_name);
    }
    json_decref(files.schema);
    json_decref(files.rules);
    json_decref(files.relationships);
    return result;
}

static int app_config_load_database(app_config_loader *loader, const char *service,
                                    const char *database)
{
    char directory[PATH_MAX];
    int result = app_config_format_path(loader, directory, sizeof directory,
                                        "data_sources/%s/%s", service, database);
    app_config_strings collections = {0};
    if (result == 0)
        result = app_config_list(loader, directory, APP_CONFIG_DIRECTORIES, &collections);
    for (size_t i = 0; result == 0 && i < collections.count; i++)
        result = app_config_load_collection(loader, database, directory, collections.items[i]);
    app_config_strings_clear(&collections);
    return result;
}

/* The sync "service_name" is the data source's "name"; checking that it
 * is also the directory name lets the directory be found by it. */
static int app_config_check_source_config(const app_config_loader *loader, const char *service)
{
    char file[PATH_MAX];
    json_t *document = NULL;
    const char *name = NULL;
    const char *type = NULL;
    int result = app_config_format_path(loader, file, sizeof file, "data_sources/%s/config.json",
                                        service);
    if (result == 0)
        result = app_config_read_json(loader, file, APP_CONFIG_OBJECT, true, &document);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "name", true, &name);
    if (result == 0)
        result = app_config_string_member(loader, file, NULL, document, "type", true, &type);
    if (result == 0 && strcmp(name, service) != 0)
        result = app_config_fail(loader, -EINVAL, file,
                                 "\"name\": expected \"%s\" (the directory name), found \"%s\"",
                                 service, name);
    if (result == 0 && strcmp(type, APP_CONFIG_SYNCED_SOURCE_TYPE) != 0)
        result = app_config_fail(loader, -EINVAL, file, "\"type\": expected \"%s\", found \"%s\"",
                                 APP_CONFIG_SYNCED_SOURCE_TYPE, type);
    json_decref(document);
    return result;
}

static int app_config_load_synced_source(app_config_loader *loader, const char *service)
{
    char path[PATH_MAX];
    int result = app_config_check_source_config(loader, service);
    if (result == 0)
        result = app_config_format_path(loader, path, sizeof path,
                                        "data_sources/%s/default_rule.json", service);
    if (result == 0)
        result = app_config_read_json(loader, path, APP_CONFIG_OBJECT, false,
                                      &loader->config->default_rule);
    app_config_strings databases = {0};
    if (result == 0)
        result = app_config_format_path(loader, path, sizeof path, "data_sources/%s", service);
    if (result == 0)
        result = app_config_list(loader, path, APP_CONFIG_DIRECTORIES, &databases);
    for (size_t i = 0; result == 0 && i < databases.count; i++)
        result = app_config_load_database(loader, service, databases.items[i]);
    app_config_strings_clear(&databases);
    return result;
}

static int app_config_load_data_sources(app_config_loader *loader)
{
    const char *synced = loader->config->sync.service_name;
    bool synced_found = false;
    app_config_strings services;
    int result = app_config_list(loader, "data_sources", APP_CONFIG_DIRECTORIES, &services);
    for (size_t i = 0; result == 0 && i < services.count; i++) {
        const char *service = services.items[i];
        if (strcmp(service, synced) == 0) {
            synced_found = true;
            result = app_config_load_synced_source(loader, service);
        } else {
            result = app_config_warn(loader, "data_sources/%s/: only the synced data source "
                                     "\"%s\" is served by realmfs-server", service, synced);
        }
    }
    app_config_strings_clear(&services);
    if (result == 0 && !synced_found)
        result = app_config_fail(loader, -ENOENT, app_config_sync_file,
                                 "\"service_name\": no data source directory data_sources/%s/",
                                 synced);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Parts realmfs-server does not run                                        */

/* How many things a part of the export defines. */
typedef int app_config_counter(const app_config_loader *loader, const char *directory,
                               size_t *count);

typedef struct app_config_ignored_part {
    const char *directory;
    app_config_counter *count;
    const char *singular;
    const char *plural;
    const char *participle; /* "not <participle> by realmfs-server" */
} app_config_ignored_part;

static int app_config_count_entries(const app_config_loader *loader, const char *directory,
                                    app_config_entry_kind kind, size_t *count)
{
    app_config_strings names;
    int result = app_config_list(loader, directory, kind, &names);
    *count = names.count;
    app_config_strings_clear(&names);
    return result;
}

static int app_config_count_json_files(const app_config_loader *loader, const char *directory,
                                       size_t *count)
{
    return app_config_count_entries(loader, directory, APP_CONFIG_JSON_FILES, count);
}

static int app_config_count_subdirectories(const app_config_loader *loader,
                                           const char *directory, size_t *count)
{
    return app_config_count_entries(loader, directory, APP_CONFIG_DIRECTORIES, count);
}

static int app_config_read_part_config(const app_config_loader *loader, const char *directory,
                                       app_config_kind kind, json_t **document)
{
    char file[PATH_MAX];
    *document = NULL;
    int result = app_config_format_path(loader, file, sizeof file, "%s/config.json", directory);
    if (result == 0)
        result = app_config_read_json(loader, file, kind, false, document);
    return result;
}

/* functions/, http_endpoints/ and https_endpoints/ list what they define
 * in an array in config.json. */
static int app_config_count_config_entries(const app_config_loader *loader,
                                           const char *directory, size_t *count)
{
    json_t *entries;
    int result = app_config_read_part_config(loader, directory, APP_CONFIG_ARRAY, &entries);
    *count = json_array_size(entries);
    json_decref(entries);
    return result;
}

static int app_config_count_enabled_hosting(const app_config_loader *loader,
                                            const char *directory, size_t *count)
{
    json_t *hosting;
    int result = app_config_read_part_config(loader, directory, APP_CONFIG_OBJECT, &hosting);
    *count = json_is_true(json_object_get(hosting, "enabled")) ? 1 : 0;
    json_decref(hosting);
    return result;
}

/* Every export has an environments/ file per environment; only those that
 * define values would change how App Services runs the app. */
static int app_config_count_environments_with_values(const app_config_loader *loader,
                                                     const char *directory, size_t *count)
{
    app_config_strings names;
    int result = app_config_list(loader, directory, APP_CONFIG_JSON_FILES, &names);
    *count = 0;
    for (size_t i = 0; result == 0 && i < names.count; i++) {
        char file[PATH_MAX];
        json_t *environment = NULL;
        result = app_config_format_path(loader, file, sizeof file, "%s/%s", directory,
                                        names.items[i]);
        if (result == 0)
            result = app_config_read_json(loader, file, APP_CONFIG_OBJECT, false, &environment);
        if (json_object_size(json_object_get(environment, "values")) > 0)
            (*count)++;
        json_decref(environment);
    }
    app_config_strings_clear(&names);
    return result;
}

/* In the order of their paths, as the warnings are listed. */
static const app_config_ignored_part app_config_ignored_parts[] = {
    {"environments", app_config_count_environments_with_values, "environment with values",
     "environments with values", "applied"},
    {"functions", app_config_count_config_entries, "function", "functions", "run"},
    {"graphql/custom_resolvers", app_config_count_json_files, "custom resolver",
     "custom resolvers", "run"},
    {"hosting", app_config_count_enabled_hosting, "hosted website", "hosted websites", "served"},
    {"http_endpoints", app_config_count_config_entries, "HTTPS endpoint", "HTTPS endpoints",
     "served"},
    {"https_endpoints", app_config_count_config_entries, "HTTPS endpoint", "HTTPS endpoints",
     "served"},
    {"log_forwarders", app_config_count_json_files, "log forwarder", "log forwarders", "run"},
    {"services", app_config_count_subdirectories, "third-party service", "third-party services",
     "run"},
    {"triggers", app_config_count_json_files, "trigger", "triggers", "run"},
    {"values", app_config_count_json_files, "value", "values", "read"},
};

static int app_config_warn_ignored_parts(app_config_loader *loader)
{
    size_t part_count = sizeof app_config_ignored_parts / sizeof app_config_ignored_parts[0];
    for (size_t i = 0; i < part_count; i++) {
        const app_config_ignored_part *part = &app_config_ignored_parts[i];
        size_t count;
        int result = part->count(loader, part->directory, &count);
        if (result == 0 && count > 0)
            result = app_config_warn(loader, "%s/: %zu %s %s not %s by realmfs-server",
                                     part->directory, count,
                                     count == 1 ? part->singular : part->plural,
                                     count == 1 ? "is" : "are", part->participle);
        if (result != 0)
            return result;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */

/* Auth comes before data_sources/ so that warnings follow path order. */
static int app_config_load_parts(app_config_loader *loader)
{
    int result = app_config_load_identity(loader);
    if (result == 0)
        result = app_config_load_sync(loader);
    if (result == 0)
        result = app_config_load_providers(loader);
    if (result == 0)
        result = app_config_load_custom_user_data(loader);
    if (result == 0)
        result = app_config_load_data_sources(loader);
    if (result == 0)
        result = app_config_warn_ignored_parts(loader);
    return result;
}

int app_config_load(const char *directory, app_config **out, char *message, size_t message_size)
{
    *out = NULL;
    if (message_size > 0)
        message[0] = '\0';
    app_config_loader loader = {
        .directory_fd = -1,
        .config = calloc(1, sizeof *loader.config),
        .message = message,
        .message_size = message_size,
    };
    if (loader.config == NULL)
        return app_config_fail(&loader, -ENOMEM, directory, "out of memory");
    int result;
    loader.directory_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (loader.directory_fd < 0) {
        result = app_config_fail_errno(&loader, directory);
    } else {
        result = app_config_load_parts(&loader);
        close(loader.directory_fd);
    }
    if (result != 0) {
        app_config_free(loader.config);
        return result;
    }
    *out = loader.config;
    return 0;
}

void app_config_free(app_config *config)
{
    if (config == NULL)
        return;
    for (size_t i = 0; i < config->collection_count; i++)
        app_config_collection_free(config->collections[i]);
    free(config->collections);
    json_decref(config->queryable_fields);
    app_config_strings_clear(&config->warnings);
    json_decref(config->default_rule);
    json_decref(config->custom_user_data_document);
    json_decref(config->sync_document);
    json_decref(config->metadata_document);
    json_decref(config->app_document);
    free(config);
}

/* ------------------------------------------------------------------------ */
/* Reading a loaded app                                                     */

const char *app_config_name(const app_config *config)
{
    return config->name;
}

const char *app_config_app_id(const app_config *config)
{
    return config->app_id;
}

const app_sync_settings *app_config_sync(const app_config *config)
{
    return &config->sync;
}

size_t app_config_collection_count(const app_config *config)
{
    return config->collection_count;
}

const app_collection *app_config_collection_at(const app_config *config, size_t index)
{
    return index < config->collection_count ? config->collections[index] : NULL;
}

const app_collection *app_config_find_collection(const app_config *config, const char *name)
{
    for (size_t i = 0; i < config->collection_count; i++) {
        if (strcmp(config->collections[i]->name, name) == 0)
            return config->collections[i];
    }
    return NULL;
}

const json_t *app_config_default_rule(const app_config *config)
{
    return config->default_rule;
}

bool app_config_field_is_queryable(const app_config *config, const char *collection,
                                   const char *field)
{
    if (strcmp(field, "_id") == 0)
        return true;
    if (config->indexed_queryable_field != NULL
        && strcmp(config->indexed_queryable_field, field) == 0)
        return true;
    if (app_config_list_contains(config->queryable_fields, field))
        return true;
    return app_config_list_contains(
        json_object_get(config->collection_queryable_fields, collection), field);
}

size_t app_config_queryable_field_count(const app_config *config)
{
    return json_array_size(config->queryable_fields);
}

const char *app_config_queryable_field_at(const app_config *config, size_t index)
{
    return json_string_value(json_array_get(config->queryable_fields, index));
}

const char *app_config_indexed_queryable_field(const app_config *config)
{
    return config->indexed_queryable_field;
}

bool app_config_provider_enabled(const app_config *config, app_auth_provider provider)
{
    return provider < APP_AUTH_PROVIDER_COUNT && config->provider_enabled[provider];
}

const app_custom_user_data *app_config_custom_user_data(const app_config *config)
{
    return config->custom_user_data_enabled ? &config->custom_user_data : NULL;
}

size_t app_config_warning_count(const app_config *config)
{
    return config->warnings.count;
}

const char *app_config_warning_at(const app_config *config, size_t index)
{
    return index < config->warnings.count ? config->warnings.items[index] : NULL;
}

/* ------------------------------------------------------------------------ */
/* Changes at run time                                                      */

/* Messages of run-time changes are "<subject>: <problem>", as the load's
 * are; a loader without a directory carries them. */
static int app_config_check_new_schema(const app_config_loader *loader, const char *name,
                                       const json_t *schema)
{
    char problem[512];
    if (schema_check(schema, problem, sizeof problem) != 0)
        return app_config_fail(loader, -EINVAL, name, "%s", problem);
    const char *title = json_string_value(json_object_get(schema, "title"));
    if (title != NULL && strcmp(title, name) != 0)
        return app_config_fail(loader, -EINVAL, name, "\"title\": expected \"%s\", found \"%s\"",
                               name, title);
    return 0;
}

int app_config_set_collection_schema(app_config *config, const char *name, json_t *schema,
                                     char *message, size_t message_size)
{
    const app_config_loader loader = {
        .directory_fd = -1, .config = config, .message = message, .message_size = message_size,
    };
    if (message_size > 0)
        message[0] = '\0';
    int result = app_config_check_new_schema(&loader, name, schema);
    if (result != 0)
        return result;
    app_collection *collection = (app_collection *)app_config_find_collection(config, name);
    if (collection != NULL) {
        json_decref((json_t *)collection->schema);
        collection->schema = json_incref(schema);
        return 0;
    }
    const char *database = config->sync.database_name;
    if (database == NULL)
        return app_config_fail(&loader, -EINVAL, app_config_sync_file,
                               "cannot add collection \"%s\": \"database_name\" is not set", name);
    collection = app_config_collection_new(config, name, database, name);
    if (collection == NULL || app_config_append_collection(config, collection) != 0)
        return app_config_fail(&loader, -ENOMEM, name, "out of memory");
    collection->schema = json_incref(schema);
    return 0;
}

int app_config_add_queryable_field(app_config *config, const char *field)
{
    if (app_config_list_contains(config->queryable_fields, field))
        return 0;
    if (config->queryable_fields == NULL) {
        config->queryable_fields = json_array();
        if (config->queryable_fields == NULL)
            return -ENOMEM;
    }
    return json_array_append_new(config->queryable_fields, json_string(field)) == 0 ? 0 : -ENOMEM;
}

/*
 * app_config.h — an Atlas App Services app export, as the App Services CLI
 * writes it (config_version 20210101 and later), read so that
 * realmfs-server can run the app unchanged.  docs/configuration.md is the
 * user's reference for every file and key.
 *
 * What is read, relative to the app directory:
 *
 *   root_config.json        name; realm_config.json, its older name, is
 *                           read when root_config.json is absent; one of
 *                           them is required
 *   .mdb/meta.json          client_app_id, when the app file has no app_id
 *   sync/config.json        required; "type" must be "flexible"
 *   data_sources/<service>/ the synced data source (sync "service_name"),
 *                           required: config.json (required, "type"
 *                           "mongodb-atlas"), default_rule.json, and per
 *                           <database>/<collection>/ directory schema.json
 *                           (checked with schema_check), rules.json and
 *                           relationships.json
 *   auth/providers.json     anon-user, local-userpass, api-key
 *   auth/custom_user_data.json
 *
 * Any other data source, any other enabled auth provider, and whatever the
 * export defines in functions/, triggers/, http_endpoints/,
 * https_endpoints/, graphql/custom_resolvers/, hosting/, values/,
 * environments/, log_forwarders/ and services/ becomes one warning string
 * each: realmfs-server does not run them.
 *
 * Every JSON file that is read must parse (duplicate keys are refused)
 * and hold the documented types; the first problem stops the load with a
 * message "<file>: <key path>: <problem>", the file relative to the app
 * directory and the key path written as quoted keys and [indexes]:
 *
 *   sync/config.json: "type": expected "flexible", found "partition"
 *   sync/config.json: "queryable_fields_names"[1]: expected a string, found a number
 *   sync/config.json: line 3, column 12: invalid JSON: invalid token near 'e'
 *
 * Threads and changes.  A loaded app_config is the export as read, and
 * many threads may read it at once as long as nobody changes it.  Only
 * Development Mode changes it, through the functions under "Changes at run
 * time" below, which only src/server/sync_schema.c calls; realmfs-server
 * then gives the app_config to one thread, its engine thread, which alone
 * reads and changes it from then on.  Changes are additive: a collection
 * is added or its schema replaced, a queryable field is added; nothing is
 * removed.
 *
 * Every app_collection pointer it hands out, and every string, lives as
 * long as the app_config.  A collection's schema pointer lives until that
 * collection's schema is replaced (hold a reference, json_incref, to keep
 * it longer).
 */
#ifndef REALMFS_APP_CONFIG_H
#define REALMFS_APP_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct app_config app_config;

/* sync/config.json; the comments give the defaults of absent keys. */
typedef struct app_sync_settings {
    bool enabled;                   /* "state" is "enabled"; default true */
    bool development_mode;          /* "development_mode_enabled"; false */
    const char *service_name;       /* "service_name"; "mongodb-atlas" */
    const char *database_name;      /* "database_name"; NULL */
    double client_max_offline_days; /* "client_max_offline_days"; 30 */
    bool recovery_mode_disabled;    /* "is_recovery_mode_disabled"; false */
} app_sync_settings;

/* One collection directory of the synced data source that holds at least
 * one of schema.json, rules.json and relationships.json; or a collection
 * Development Mode added (then without rules and relationships). */
typedef struct app_collection {
    const char *name;            /* the schema's "title", else the directory name */
    const char *database;        /* the database directory name */
    const char *directory;       /* the collection directory name (the name
                                    itself for an added collection) */
    const char *service;         /* the data source, the sync "service_name" */
    const json_t *schema;        /* passed schema_check; NULL when none */
    const json_t *relationships; /* an object; NULL when none */
    const json_t *rules;         /* an object, as written; NULL when none */
} app_collection;

typedef enum app_auth_provider {
    APP_AUTH_ANONYMOUS,     /* "anon-user" */
    APP_AUTH_USER_PASSWORD, /* "local-userpass" */
    APP_AUTH_API_KEY,       /* "api-key" */
    APP_AUTH_PROVIDER_COUNT
} app_auth_provider;

/* auth/custom_user_data.json when "enabled" is true. */
typedef struct app_custom_user_data {
    const char *service_name;  /* "mongo_service_name"; the synced data source */
    const char *database;      /* "database_name" */
    const char *collection;    /* "collection_name" */
    const char *user_id_field; /* "user_id_field" */
} app_custom_user_data;

/*
 * Read the app export in directory.  On success returns 0, stores a new
 * app_config in *out and an empty string in message.  Otherwise *out is
 * NULL and the result is -ENOENT (a required file or directory is
 * missing), -EINVAL (a file is not what the export format says),
 * -ENOMEM, or another negative errno from reading; message then says
 * which file, which key and what is wrong.  message may be NULL when
 * message_size is 0; a longer message is cut to fit.
 */
int app_config_load(const char *directory, app_config **out, char *message, size_t message_size);

/* NULL is allowed. */
void app_config_free(app_config *config);

/* "name" of the app file. */
const char *app_config_name(const app_config *config);

/* The client App ID ("todo-sync-xbrma"): "app_id" of the app file, else
 * "client_app_id" of .mdb/meta.json; NULL when neither is there. */
const char *app_config_app_id(const app_config *config);

const app_sync_settings *app_config_sync(const app_config *config);

/* The collections, sorted by database directory, then collection
 * directory, as the export has them; collections added at run time follow,
 * in the order they were added. */
size_t app_config_collection_count(const app_config *config);
const app_collection *app_config_collection_at(const app_config *config, size_t index);
/* NULL when no collection has that name. */
const app_collection *app_config_find_collection(const app_config *config, const char *name);

/* default_rule.json of the synced data source; NULL when it has none. */
const json_t *app_config_default_rule(const app_config *config);

/*
 * Whether Flexible Sync subscriptions on collection may filter on field:
 * "_id" always; any field of "queryable_fields_names"; the fields listed
 * for that collection in "collection_queryable_fields_names"; and the
 * indexed queryable field.  Names are compared exactly.
 */
bool app_config_field_is_queryable(const app_config *config, const char *collection,
                                   const char *field);

/* The fields of "queryable_fields_names" (queryable in every collection),
 * with those added at run time after them. */
size_t app_config_queryable_field_count(const app_config *config);
const char *app_config_queryable_field_at(const app_config *config, size_t index);

/* The one field of "indexed_queryable_fields_names"; NULL when none. */
const char *app_config_indexed_queryable_field(const app_config *config);

/* Whether auth/providers.json has a provider of that type that is not
 * "disabled".  false for every provider when the file is absent. */
bool app_config_provider_enabled(const app_config *config, app_auth_provider provider);

/* NULL when custom user data is disabled or auth/custom_user_data.json is
 * absent. */
const app_custom_user_data *app_config_custom_user_data(const app_config *config);

/* What the export defines that realmfs-server does not run, one sentence
 * each, sorted by part: "functions/: 4 functions are not run by
 * realmfs-server".  The server prints them as one warning at start. */
size_t app_config_warning_count(const app_config *config);
const char *app_config_warning_at(const app_config *config, size_t index);

/*
 * Changes at run time (Development Mode; see "Threads and changes" above).
 */

/*
 * Make schema the schema of the collection named name, replacing the one
 * it had; a collection the app does not have is added, in the sync
 * "database_name" of the synced data source.  The app_config takes a
 * reference on schema, which nobody may change afterwards.  0, -ENOMEM, or
 * -EINVAL with a message "<name>: <problem>" (schema fails schema_check,
 * or has a "title" other than name) or "sync/config.json: <problem>" (a
 * collection is to be added while sync/config.json has no
 * "database_name").  On failure nothing changed.
 */
int app_config_set_collection_schema(app_config *config, const char *name, json_t *schema,
                                     char *message, size_t message_size);

/* Make field queryable in every collection (append it to
 * "queryable_fields_names"); nothing when it is already there.  0 or
 * -ENOMEM. */
int app_config_add_queryable_field(app_config *config, const char *field);

#endif

/*
 * Unit tests of the sync engine (sync_engine.h): the real engine on a real
 * sync_store in a temporary directory, running the sync-todo app from
 * $REALMFS_EXPORTS (Item: _id objectId, isComplete, owner_id, summary, all
 * required; owner_id and _id queryable; development mode on), with users
 * made by auth.h in the same data directory.  Most tests run a copy of it
 * whose only Item role lets everyone read and write everything, so that
 * they are about syncing; the tests of roles and rules run the exports
 * as they are, or copies with other rules.
 *
 * Test clients feed frames to sync_engine_receive and parse what
 * sync_engine_next_frame gives with protocol_parse.  Each keeps a mirror:
 * the downloads it received applied to a plain map of documents, as a
 * real client would, so tests compare mirrors with the server's documents.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "realmfs/app_config.h"
#include "realmfs/auth.h"
#include "realmfs/ejson.h"
#include "realmfs/protocol.h"
#include "realmfs/rules.h"
#include "realmfs/sync_store.h"
#include "realmfs/value.h"
#include "sync_engine.h"
#include "sync_schema.h"

static const auth_options fast_hashing = {
    .hash_passes = 1, .hash_memory_kib = 8, .hash_lanes = 1,
};

static char base_directory[PATH_MAX]; /* holds every test's data directory */
static char data_directory[PATH_MAX];
static app_config *app;
static rules *app_rules;
static sync_schema *schema;
static sync_store *store;
static auth *users;
static auth_user alice;
static auth_user bob;
static sync_engine *engine;
static int64_t clock_ms;

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

static int remove_entry(const char *path, const struct stat *status, int type, struct FTW *walk)
{
    (void)status;
    (void)type;
    (void)walk;
    return remove(path);
}

static void add_user(const char *email, auth_user *user)
{
    char id[AUTH_ID_SIZE];
    ck_assert_int_eq(auth_add_user(users, email, "secret", id), 0);
    ck_assert_int_eq(auth_find_user(users, id, user), 0);
}

static void start_engine(size_t batch_bytes, size_t max_queued_bytes)
{
    sync_engine_options options = {.bootstrap_batch_bytes = batch_bytes,
                                   .max_queued_bytes = max_queued_bytes};
    char message[512];
    ck_assert_msg(rules_load(app, &app_rules, message, sizeof message) == 0, "%s", message);
    ck_assert_msg(sync_schema_open(app, data_directory, &schema, message, sizeof message) == 0,
                  "%s", message);
    ck_assert_int_eq(sync_engine_new(app, app_rules, schema, store, &options, NULL, &engine,
                                     message, sizeof message),
                     0);
}

static void stop_engine(void)
{
    sync_engine_free(engine);
    sync_schema_close(schema);
    rules_free(app_rules);
}

static void load_app(const char *directory)
{
    char message[512];
    ck_assert_msg(app_config_load(directory, &app, message, sizeof message) == 0, "%s", message);
}

static void export_path(char out[PATH_MAX], const char *name)
{
    const char *exports = getenv("REALMFS_EXPORTS");
    ck_assert_msg(exports != NULL, "REALMFS_EXPORTS must name the app exports");
    snprintf(out, PATH_MAX, "%s/%s", exports, name);
}

/* Run another app from now on (no connection may be open). */
static void switch_app(const char *directory)
{
    stop_engine();
    app_config_free(app);
    load_app(directory);
    start_engine(0, 0);
}

/* printf into out, which must be large enough. */
static void format_text(char *out, size_t size, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(out, size, format, arguments);
    va_end(arguments);
    ck_assert(length >= 0 && (size_t)length < size);
}

/* Run a shell command made with printf; it must succeed. */
static void run_shell(const char *format, ...)
{
    char command[4 * PATH_MAX];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(command, sizeof command, format, arguments);
    va_end(arguments);
    ck_assert(length >= 0 && (size_t)length < sizeof command);
    ck_assert_msg(system(command) == 0, "%s", command);
}

/* A copy of an export in the test's data directory, named copy, with the
 * file at relative path replaced by text (when path is not NULL). */
static void copy_export(const char *name, const char *copy, const char *path, const char *text,
                        char out[PATH_MAX])
{
    char source[PATH_MAX];
    export_path(source, name);
    format_text(out, PATH_MAX, "%s/%s", data_directory, copy);
    run_shell("cp -r '%s' '%s'", source, out);
    if (path == NULL)
        return;
    char file[2 * PATH_MAX];
    format_text(file, sizeof file, "%s/%s", out, path);
    FILE *stream = fopen(file, "w");
    ck_assert_ptr_nonnull(stream);
    ck_assert_int_ge(fputs(text, stream), 0);
    ck_assert_int_eq(fclose(stream), 0);
}

#define SYNC_TODO_ITEM_RULES "data_sources/mongodb-atlas/todo/Item/rules.json"

/* An Item rules.json of sync-todo with the one role given. */
static const char *item_rules(const char *role)
{
    static char text[2048];
    snprintf(text, sizeof text, "{\"collection\": \"Item\", \"database\": \"todo\", "
                                "\"roles\": [%s]}",
             role);
    return text;
}

#define EVERYONE_ROLE                                                                         \
    "{\"name\": \"everyone\", \"apply_when\": {}, "                                            \
    "\"document_filters\": {\"read\": true, \"write\": true}, \"read\": true, \"write\": true}"

/* Run a copy of the test app outside Development Mode. */
static void switch_to_strict_app(void)
{
    char directory[PATH_MAX];
    copy_export("sync-todo", "strict", SYNC_TODO_ITEM_RULES, item_rules(EVERYONE_ROLE),
                directory);
    run_shell("sed -i 's/\"development_mode_enabled\": true/\"development_mode_enabled\": false/' "
              "'%s/sync/config.json'",
              directory);
    switch_app(directory);
}

static void setup(void)
{
    int length = snprintf(data_directory, sizeof data_directory, "%s/data-XXXXXX", base_directory);
    ck_assert(length > 0 && (size_t)length < sizeof data_directory);
    ck_assert_ptr_nonnull(mkdtemp(data_directory));
    char app_directory[PATH_MAX];
    copy_export("sync-todo", "open-app", SYNC_TODO_ITEM_RULES, item_rules(EVERYONE_ROLE),
                app_directory);
    load_app(app_directory);
    ck_assert_int_eq(sync_store_open(data_directory, (uint64_t)1 << 30, &store), 0);
    ck_assert_int_eq(auth_open(data_directory, &fast_hashing, &users), 0);
    add_user("alice@example.com", &alice);
    add_user("bob@example.com", &bob);
    clock_ms = 1714560000000;
    start_engine(0, 0);
}

static void teardown(void)
{
    stop_engine();
    auth_user_clear(&alice);
    auth_user_clear(&bob);
    auth_close(users);
    sync_store_close(store);
    app_config_free(app);
}

/* Around each test case, in the runner's process, so that the data
 * directories go even when a test fails (and its process ends early). */
static void make_base_directory(void)
{
    snprintf(base_directory, sizeof base_directory, "/tmp/realmfs-test-sync-engine-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base_directory));
}

static void remove_base_directory(void)
{
    nftw(base_directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------ */
/* Test clients                                                        */

typedef struct client {
    sync_connection *connection;
    uint64_t session;
    uint64_t file_identity;
    uint64_t server_version;                 /* download progress */
    uint64_t last_integrated_client_version; /* the last acknowledgement */
    uint64_t client_version;                 /* of its last upload */
    json_t *mirror;                          /* {"<id as text>": document} of Item */
    json_t *other_mirrors;                   /* the same for other collections, by name */
    json_t *read_only;                       /* {"<collection>/<id as text>": true}, as the
                                                downloads' access entries say */
    protocol_message frames[512];            /* received since the last clear */
    size_t frame_count;
} client;

static void client_connect(client *c, const auth_user *user)
{
    memset(c, 0, sizeof *c);
    c->connection = sync_engine_connect(engine, user, c, clock_ms);
    ck_assert_ptr_nonnull(c->connection);
    c->session = 1;
    c->mirror = json_object();
    c->other_mirrors = json_object();
    c->read_only = json_object();
}

static void client_forget_frames(client *c)
{
    for (size_t index = 0; index < c->frame_count; index++)
        protocol_message_clear(&c->frames[index]);
    c->frame_count = 0;
}

/* The socket closes; the client keeps its file, progress and mirror. */
static void client_disconnect(client *c)
{
    sync_engine_disconnect(engine, c->connection);
    c->connection = NULL;
}

static void client_free(client *c)
{
    if (c->connection != NULL)
        client_disconnect(c);
    client_forget_frames(c);
    json_decref(c->mirror);
    json_decref(c->other_mirrors);
    json_decref(c->read_only);
}

static char *id_key(const json_t *id)
{
    size_t length;
    char *key = ejson_format_line(id, &length);
    ck_assert_ptr_nonnull(key);
    return key;
}

/* The document a set or unset walks to: every prefix of the path becomes
 * an embedded document.  *last receives the final field name. */
static json_t *mirror_walk(json_t *document, char *path, char **last)
{
    char *dot;
    while ((dot = strchr(path, '.')) != NULL) {
        *dot = '\0';
        json_t *inner = json_object_get(document, path);
        if (value_type_of(inner) != VALUE_DOCUMENT) {
            inner = json_object();
            json_object_set_new(document, path, inner);
        }
        document = inner;
        path = dot + 1;
    }
    *last = path;
    return document;
}

static void mirror_apply(client *c, const changeset_instruction *instruction)
{
    json_t *mirror = c->mirror;
    if (strcmp(instruction->collection, "Item") != 0) {
        mirror = json_object_get(c->other_mirrors, instruction->collection);
        if (mirror == NULL) {
            mirror = json_object();
            json_object_set_new(c->other_mirrors, instruction->collection, mirror);
        }
    }
    char *key = id_key(instruction->id);
    json_t *document = json_object_get(mirror, key);
    if (instruction->operation == CHANGESET_CREATE && document == NULL) {
        json_object_set_new(mirror, key, json_pack("{s:O}", "_id", instruction->id));
    } else if (instruction->operation == CHANGESET_DELETE) {
        json_object_del(mirror, key);
        char access_key[512];
        snprintf(access_key, sizeof access_key, "%s/%s", instruction->collection, key);
        json_object_del(c->read_only, access_key);
    } else if (document != NULL && instruction->path != NULL) {
        char *path = strdup(instruction->path);
        char *last;
        json_t *parent = mirror_walk(document, path, &last);
        if (instruction->operation == CHANGESET_SET)
            json_object_set(parent, last, instruction->value);
        else
            json_object_del(parent, last);
        free(path);
    }
    free(key);
}

/* Read every frame the engine has for the client; apply downloads. */
static size_t client_pump(client *c)
{
    size_t received = 0;
    char *frame;
    size_t length;
    while ((frame = sync_engine_next_frame(engine, c->connection, &length)) != NULL) {
        ck_assert_uint_lt(c->frame_count, sizeof c->frames / sizeof c->frames[0]);
        protocol_message *message = &c->frames[c->frame_count++];
        protocol_error error;
        ck_assert_msg(protocol_parse(frame, length, message, &error) == 0, "%s: %s", frame,
                      error.message);
        free(frame);
        received++;
        if (message->type == PROTOCOL_MESSAGE_IDENT)
            c->file_identity = message->body.ident.file_identity;
        if (message->type != PROTOCOL_MESSAGE_DOWNLOAD)
            continue;
        const protocol_download_body *download = &message->body.download;
        for (size_t index = 0; index < download->changeset_count; index++) {
            const changeset *changes = &download->changesets[index].changeset;
            for (size_t instruction = 0; instruction < changes->count; instruction++)
                mirror_apply(c, &changes->instructions[instruction]);
        }
        for (size_t index = 0; index < download->access_count; index++) {
            const protocol_object_access *entry = &download->access[index];
            char *id = id_key(entry->id);
            char key[512];
            snprintf(key, sizeof key, "%s/%s", entry->collection, id);
            free(id);
            if (entry->writable)
                json_object_del(c->read_only, key);
            else
                json_object_set_new(c->read_only, key, json_true());
        }
        ck_assert_uint_ge(download->server_version, c->server_version);
        c->server_version = download->server_version;
        c->last_integrated_client_version = download->last_integrated_client_version;
    }
    return received;
}

static int client_send(client *c, const char *format, ...)
{
    char text[8192];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(text, sizeof text, format, arguments);
    va_end(arguments);
    ck_assert(length > 0 && (size_t)length < sizeof text);
    return sync_engine_receive(engine, c->connection, text, (size_t)length, false, clock_ms);
}

/* The index-th frame received of a type, or NULL. */
static protocol_message *client_frame(client *c, protocol_message_type type, size_t index)
{
    for (size_t position = 0; position < c->frame_count; position++)
        if (c->frames[position].type == type && index-- == 0)
            return &c->frames[position];
    return NULL;
}

static size_t client_count(client *c, protocol_message_type type)
{
    size_t count = 0;
    while (client_frame(c, type, count) != NULL)
        count++;
    return count;
}

static void assert_error(client *c, protocol_error_code code, uint64_t session)
{
    protocol_message *error = client_frame(c, PROTOCOL_MESSAGE_ERROR, 0);
    ck_assert_msg(error != NULL, "expected error %d", code);
    ck_assert_int_eq(error->body.error.code, code);
    ck_assert_uint_eq(error->session, session);
}

/* Bind a new file and take its identity. */
static void client_bind_new(client *c)
{
    ck_assert_int_eq(client_send(c, "{\"type\":\"bind\",\"session\":%llu,\"file_identity\":0,"
                                    "\"last_server_version\":0,"
                                    "\"last_integrated_client_version\":0}",
                                 (unsigned long long)c->session),
                     0);
    client_pump(c);
    ck_assert_uint_ge(c->file_identity, 1);
    client_forget_frames(c);
}

/* Bind again with the client's file and progress. */
static int client_rebind(client *c)
{
    return client_send(c, "{\"type\":\"bind\",\"session\":%llu,\"file_identity\":%llu,"
                          "\"last_server_version\":%llu,\"last_integrated_client_version\":%llu}",
                       (unsigned long long)c->session, (unsigned long long)c->file_identity,
                       (unsigned long long)c->server_version,
                       (unsigned long long)c->last_integrated_client_version);
}

static int client_query(client *c, uint64_t version, const char *query)
{
    return client_send(c, "{\"type\":\"query\",\"session\":%llu,\"query_version\":%llu,"
                          "\"subscriptions\":{\"Item\":[{\"name\":\"s\",\"query\":\"%s\"}]}}",
                       (unsigned long long)c->session, (unsigned long long)version, query);
}

/* A client of user with a new file and, unless query is NULL, that
 * subscription set (query version 1) downloaded into its mirror. */
static void client_start(client *c, const auth_user *user, const char *query)
{
    client_connect(c, user);
    client_bind_new(c);
    if (query == NULL)
        return;
    ck_assert_int_eq(client_query(c, 1, query), 0);
    client_pump(c);
    client_forget_frames(c);
}

/* A new connection for a client whose connection closed; it keeps its
 * file, progress and mirror, and still has to bind. */
static void client_reconnect(client *c, const auth_user *user)
{
    c->connection = sync_engine_connect(engine, user, c, clock_ms);
    ck_assert_ptr_nonnull(c->connection);
    client_forget_frames(c);
}

/* Upload one changeset of instructions (a JSON array's contents). */
static int client_upload(client *c, const char *instructions)
{
    c->client_version++;
    clock_ms++;
    return client_send(c, "{\"type\":\"upload\",\"session\":%llu,"
                          "\"last_integrated_server_version\":%llu,\"changesets\":["
                          "{\"origin\":%llu,\"client_version\":%llu,\"timestamp\":%lld,"
                          "\"instructions\":[%s]}]}",
                       (unsigned long long)c->session, (unsigned long long)c->server_version,
                       (unsigned long long)c->file_identity,
                       (unsigned long long)c->client_version, (long long)clock_ms, instructions);
}

/* ------------------------------------------------------------------ */
/* Documents                                                           */

static void object_id(int number, char out[64])
{
    snprintf(out, 64, "{\"$oid\":\"%024x\"}", number);
}

/* The instructions that create Item number with every required field. */
static const char *create_item(int number, const char *owner, const char *summary)
{
    static char text[1024];
    char id[64];
    object_id(number, id);
    snprintf(text, sizeof text,
             "{\"op\":\"create\",\"collection\":\"Item\",\"id\":%s},"
             "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"isComplete\",\"value\":false},"
             "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"owner_id\",\"value\":\"%s\"},"
             "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"summary\",\"value\":\"%s\"}",
             id, id, id, owner, id, summary);
    return text;
}

static const char *set_field(int number, const char *path, const char *value_json)
{
    static char text[512];
    char id[64];
    object_id(number, id);
    snprintf(text, sizeof text,
             "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"%s\",\"value\":%s}", id,
             path, value_json);
    return text;
}

static const char *delete_item(int number)
{
    static char text[256];
    char id[64];
    object_id(number, id);
    snprintf(text, sizeof text, "{\"op\":\"delete\",\"collection\":\"Item\",\"id\":%s}", id);
    return text;
}

/* Integrate a changeset made by the server itself (origin 0), as an
 * import does, from a JSON array of instructions. */
static void server_write(const char *instructions)
{
    char text[8192];
    clock_ms++;
    snprintf(text, sizeof text,
             "{\"origin\":0,\"client_version\":0,\"timestamp\":%lld,\"instructions\":[%s]}",
             (long long)clock_ms, instructions);
    json_error_t json_error;
    json_t *json = json_loads(text, 0, &json_error);
    ck_assert_msg(json != NULL, "%s: %s", text, json_error.text);
    changeset changes;
    char message[256];
    ck_assert_msg(changeset_parse(json, &changes, message, sizeof message) == 0, "%s", message);
    sync_store_integration result = {0};
    ck_assert_int_eq(sync_store_integrate(store, &changes, 1, clock_ms, &result), 0);
    sync_store_integration_clear(&result);
    changeset_clear(&changes);
    json_decref(json);
}

static int collect_document(const sync_store_document_view *view, void *context)
{
    ejson_error error;
    json_t *document = ejson_parse(view->text, view->size, &error);
    ck_assert_ptr_nonnull(document);
    char *key = id_key(view->id);
    json_object_set_new(context, key, document);
    free(key);
    return 0;
}

/* The server's documents of a collection, as a mirror holds them. */
static json_t *server_collection(const char *collection)
{
    json_t *documents = json_object();
    sync_store_snapshot *snapshot;
    ck_assert_int_eq(sync_store_snapshot_begin(store, &snapshot), 0);
    ck_assert_int_eq(sync_store_snapshot_scan(snapshot, collection, NULL, collect_document,
                                              documents),
                     0);
    sync_store_snapshot_end(snapshot);
    return documents;
}

static json_t *server_documents(void)
{
    return server_collection("Item");
}

/* Equal documents with their fields in the same order. */
static void assert_same_documents(const json_t *expected, const json_t *actual)
{
    char *expected_text = ejson_format_line(expected, &(size_t){0});
    char *actual_text = ejson_format_line(actual, &(size_t){0});
    ck_assert_str_eq(actual_text, expected_text);
    free(expected_text);
    free(actual_text);
}

/* Equal maps of documents, whatever the order of their keys. */
static void assert_same_maps(const json_t *expected, const json_t *actual)
{
    char *expected_text = json_dumps(expected, JSON_SORT_KEYS);
    char *actual_text = json_dumps(actual, JSON_SORT_KEYS);
    ck_assert_str_eq(actual_text, expected_text);
    free(expected_text);
    free(actual_text);
}

static void assert_mirror_is_server(const client *c)
{
    json_t *documents = server_documents();
    ck_assert_uint_eq(json_object_size(c->mirror), json_object_size(documents));
    const char *key;
    json_t *document;
    json_object_foreach(documents, key, document) {
        json_t *mirrored = json_object_get(c->mirror, key);
        ck_assert_msg(mirrored != NULL, "%s is missing from the mirror", key);
        assert_same_documents(document, mirrored);
    }
    json_decref(documents);
}

/* The mirror's key of Item number: its _id as ejson_format_line writes it. */
static void item_key(int number, char key[64])
{
    snprintf(key, 64, "{\"$oid\": \"%024x\"}", number);
}

static bool mirror_has(const client *c, int number)
{
    char key[64];
    item_key(number, key);
    return json_object_get(c->mirror, key) != NULL;
}

/* Whether the downloads said the client may not write Item number. */
static bool read_only(const client *c, int number)
{
    char key[64];
    item_key(number, key);
    char access_key[128];
    snprintf(access_key, sizeof access_key, "Item/%s", key);
    return json_object_get(c->read_only, access_key) != NULL;
}

static const json_t *mirrored_item(const client *c, int number)
{
    char key[64];
    item_key(number, key);
    return json_object_get(c->mirror, key);
}

static sync_engine_metrics metrics_now(void)
{
    sync_engine_metrics metrics;
    sync_engine_get_metrics(engine, &metrics);
    return metrics;
}

/* ------------------------------------------------------------------ */
/* Binding, pings, errors                                              */

START_TEST(test_bind_new_file_gets_an_identity)
{
    client a, b;
    client_connect(&a, &alice);
    client_connect(&b, &alice);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"bind\",\"session\":1,\"file_identity\":0,"
                                     "\"last_server_version\":0,"
                                     "\"last_integrated_client_version\":0}"),
                     0);
    client_pump(&a);
    /* The identity, then the schemas, before anything else. */
    ck_assert_uint_eq(a.frame_count, 2);
    ck_assert_int_eq(a.frames[0].type, PROTOCOL_MESSAGE_IDENT);
    ck_assert_int_eq(a.frames[1].type, PROTOCOL_MESSAGE_SCHEMA);
    ck_assert(a.frames[1].body.schema.development_mode);
    ck_assert_ptr_nonnull(json_object_get(a.frames[1].body.schema.collections, "Item"));
    client_forget_frames(&a);
    client_bind_new(&b);
    ck_assert_uint_ne(a.file_identity, b.file_identity);

    sync_store_file file = {0};
    ck_assert_int_eq(sync_store_get_file(store, a.file_identity, &file), 0);
    ck_assert_str_eq(file.user_id, alice.id);
    sync_store_file_clear(&file);

    ck_assert_uint_eq(metrics_now().connections, 2);
    ck_assert_uint_eq(metrics_now().sessions, 2);
    client_free(&a);
    client_free(&b);
    ck_assert_uint_eq(metrics_now().connections, 0);
    ck_assert_uint_eq(metrics_now().sessions, 0);
}
END_TEST

START_TEST(test_bind_refusals)
{
    client a, other_user;
    client_connect(&a, &alice);
    client_connect(&other_user, &bob);
    client_bind_new(&a);

    /* Unknown identity: 200 on the session, which then ignores all but unbind. */
    a.session = 2;
    ck_assert_int_eq(client_send(&a, "{\"type\":\"bind\",\"session\":2,\"file_identity\":99,"
                                     "\"last_server_version\":0,"
                                     "\"last_integrated_client_version\":0}"),
                     0);
    client_pump(&a);
    assert_error(&a, PROTOCOL_ERROR_BAD_FILE_IDENTITY, 2);
    client_forget_frames(&a);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"mark\",\"session\":2,\"request\":1}"), 0);
    ck_assert_uint_eq(client_pump(&a), 0);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"unbind\",\"session\":2}"), 0);
    client_pump(&a);
    ck_assert_ptr_nonnull(client_frame(&a, PROTOCOL_MESSAGE_UNBOUND, 0));
    client_forget_frames(&a);

    /* The same file in a second session of the connection: 206. */
    a.session = 3;
    a.server_version = 0;
    ck_assert_int_eq(client_rebind(&a), 0);
    client_pump(&a);
    assert_error(&a, PROTOCOL_ERROR_SESSION_ALREADY_BOUND, 3);
    client_forget_frames(&a);

    /* Another user's file: 204. */
    other_user.file_identity = a.file_identity;
    ck_assert_int_eq(client_rebind(&other_user), 0);
    client_pump(&other_user);
    assert_error(&other_user, PROTOCOL_ERROR_PERMISSION_DENIED, 1);
    client_forget_frames(&other_user);

    /* Progress the server never gave: 201. */
    client b;
    client_connect(&b, &alice);
    b.file_identity = a.file_identity;
    b.server_version = 5;
    client_disconnect(&a);
    ck_assert_int_eq(client_rebind(&b), 0);
    client_pump(&b);
    assert_error(&b, PROTOCOL_ERROR_CLIENT_RESET_REQUIRED, 1);
    client_free(&a);
    client_free(&b);
    client_free(&other_user);
}
END_TEST

START_TEST(test_ping_pong)
{
    client a;
    client_connect(&a, &alice);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"ping\",\"timestamp\":1234}"), 0);
    ck_assert_uint_eq(client_pump(&a), 1);
    ck_assert_int_eq(a.frames[0].type, PROTOCOL_MESSAGE_PONG);
    ck_assert_uint_eq(a.frames[0].body.ping.timestamp, 1234);
    ck_assert_int_eq(sync_engine_close_code(a.connection), 0);
    client_free(&a);
}
END_TEST

typedef struct bad_input {
    const char *frame;
    bool binary;
    protocol_error_code code;
    int close_code;
} bad_input;

/* Each kind of bad input closes its connection with the documented code;
 * a second connection is not affected. */
START_TEST(test_malformed_input_closes_only_that_connection)
{
    static const bad_input inputs[] = {
        {"{\"type\":\"ping\",", false, PROTOCOL_ERROR_MALFORMED_MESSAGE, 1002},
        {"{\"type\":\"teleport\",\"session\":1}", false, PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE, 1002},
        {"{\"type\":\"ping\",\"timestamp\":1}", true, PROTOCOL_ERROR_MALFORMED_MESSAGE, 1002},
        {"{\"type\":\"pong\",\"timestamp\":1}", false, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, 1002},
        {"{\"type\":\"mark\",\"session\":7,\"request\":1}", false,
         PROTOCOL_ERROR_UNEXPECTED_MESSAGE, 1002},
        {"{\"type\":\"ping\",\"timestamp\":-1}", false, PROTOCOL_ERROR_MALFORMED_MESSAGE, 1002},
    };
    client bystander;
    client_connect(&bystander, &bob);
    for (size_t index = 0; index < sizeof inputs / sizeof inputs[0]; index++) {
        client bad;
        client_connect(&bad, &alice);
        const bad_input *input = &inputs[index];
        ck_assert_int_eq(sync_engine_receive(engine, bad.connection, input->frame,
                                             strlen(input->frame), input->binary, clock_ms),
                         input->code);
        client_pump(&bad);
        ck_assert_uint_eq(bad.frame_count, 1);
        assert_error(&bad, input->code, 0);
        ck_assert_int_eq(sync_engine_close_code(bad.connection), input->close_code);
        /* Later frames are ignored. */
        ck_assert_int_eq(client_send(&bad, "{\"type\":\"ping\",\"timestamp\":1}"), input->code);
        ck_assert_uint_eq(client_pump(&bad), 0);
        client_free(&bad);

        ck_assert_int_eq(client_send(&bystander, "{\"type\":\"ping\",\"timestamp\":5}"), 0);
        ck_assert_uint_eq(client_pump(&bystander), 1);
        ck_assert_int_eq(sync_engine_close_code(bystander.connection), 0);
    }

    /* Too large: the text is not read. */
    client large;
    client_connect(&large, &alice);
    ck_assert_int_eq(sync_engine_receive(engine, large.connection, "{", PROTOCOL_MAX_MESSAGE_BYTES + 1,
                                         false, clock_ms),
                     PROTOCOL_ERROR_MESSAGE_TOO_LARGE);
    client_pump(&large);
    assert_error(&large, PROTOCOL_ERROR_MESSAGE_TOO_LARGE, 0);
    ck_assert_int_eq(sync_engine_close_code(large.connection), 1009);
    client_free(&large);

    ck_assert_uint_eq(metrics_now().protocol_errors, sizeof inputs / sizeof inputs[0] + 1);
    client_free(&bystander);
}
END_TEST

/* A changeset with another origin, or one that breaks the rules, ends the
 * session, not the connection. */
START_TEST(test_bad_changesets_end_the_session)
{
    client a;
    client_connect(&a, &alice);
    client_bind_new(&a);
    a.file_identity++;
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "x")), 0);
    a.file_identity--;
    client_pump(&a);
    assert_error(&a, PROTOCOL_ERROR_BAD_CHANGESET, 1);
    client_forget_frames(&a);
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "x")), 0);
    ck_assert_uint_eq(client_pump(&a), 0);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"unbind\",\"session\":1}"), 0);
    client_pump(&a);
    ck_assert_ptr_nonnull(client_frame(&a, PROTOCOL_MESSAGE_UNBOUND, 0));
    client_forget_frames(&a);

    a.session = 2;
    client_bind_new(&a);
    ck_assert_int_eq(client_upload(&a, "{\"op\":\"move\",\"collection\":\"Item\",\"id\":1}"), 0);
    client_pump(&a);
    assert_error(&a, PROTOCOL_ERROR_BAD_CHANGESET, 2);
    ck_assert_int_eq(sync_engine_close_code(a.connection), 0);
    json_t *documents = server_documents();
    ck_assert_uint_eq(json_object_size(documents), 0);
    json_decref(documents);
    client_free(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Queries and bootstraps                                              */

/* Items written before clients connect, as an import before the server
 * starts: the tick lets the engine take them as its starting point. */
static void write_items(int count)
{
    for (int number = 1; number <= count; number++)
        server_write(create_item(number, number % 3 == 0 ? "bob" : "alice", "a task"));
    sync_engine_tick(engine, clock_ms);
}

START_TEST(test_bootstrap_in_batches)
{
    stop_engine();
    start_engine(300, 0);
    write_items(30);
    client a;
    client_connect(&a, &alice);
    client_bind_new(&a);
    ck_assert_int_eq(client_query(&a, 1, "owner_id == 'alice'"), 0);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"mark\",\"session\":1,\"request\":7}"), 0);
    client_pump(&a);

    size_t downloads = client_count(&a, PROTOCOL_MESSAGE_DOWNLOAD);
    ck_assert_uint_gt(downloads, 3);
    double progress = 0;
    for (size_t index = 0; index < downloads; index++) {
        const protocol_download_body *download =
            &client_frame(&a, PROTOCOL_MESSAGE_DOWNLOAD, index)->body.download;
        ck_assert_uint_eq(download->query_version, 1);
        ck_assert_uint_eq(download->server_version, 30);
        ck_assert(download->last_in_batch == (index == downloads - 1));
        ck_assert(download->progress_estimate >= progress);
        progress = download->progress_estimate;
    }
    ck_assert_double_eq(progress, 1.0);
    /* The mark comes after the whole bootstrap. */
    ck_assert_int_eq(a.frames[a.frame_count - 1].type, PROTOCOL_MESSAGE_MARK);
    ck_assert_uint_eq(a.frames[a.frame_count - 1].body.mark.request, 7);

    ck_assert_uint_eq(json_object_size(a.mirror), 20);
    for (int number = 1; number <= 30; number++)
        ck_assert(mirror_has(&a, number) == (number % 3 != 0));

    /* A new set: bob's items enter, alice's leave. */
    client_forget_frames(&a);
    ck_assert_int_eq(client_query(&a, 2, "owner_id == 'bob'"), 0);
    client_pump(&a);
    ck_assert_uint_eq(json_object_size(a.mirror), 10);
    for (int number = 1; number <= 30; number++)
        ck_assert(mirror_has(&a, number) == (number % 3 == 0));

    ck_assert_uint_eq(metrics_now().bootstraps, 2);
    ck_assert_uint_eq(metrics_now().server_version, 30);
    ck_assert_uint_eq(metrics_now().history_changesets, 30);
    client_free(&a);
}
END_TEST

START_TEST(test_refused_query_keeps_the_old_set)
{
    switch_to_strict_app(); /* Development Mode would make summary queryable */
    write_items(3);
    client a;
    client_start(&a, &alice, "owner_id == 'alice'");
    ck_assert_uint_eq(json_object_size(a.mirror), 2);

    ck_assert_int_eq(client_query(&a, 2, "summary == 'a task'"), 0);
    ck_assert_int_eq(client_query(&a, 3, "owner_id == "), 0);
    ck_assert_int_eq(client_query(&a, 1, "TRUEPREDICATE"), 0);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 3);
    const protocol_query_error_body *refusal = &a.frames[0].body.query_error;
    ck_assert_int_eq(a.frames[0].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    ck_assert_uint_eq(refusal->query_version, 2);
    ck_assert_int_eq(refusal->code, PROTOCOL_ERROR_BAD_QUERY);
    ck_assert_str_eq(refusal->message, "Item: s: summary is not a queryable field");
    ck_assert_int_eq(a.frames[1].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    ck_assert_ptr_nonnull(strstr(a.frames[1].body.query_error.message, "Item: s: byte "));
    ck_assert_int_eq(a.frames[2].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    client_forget_frames(&a);

    /* A long name in a refusal is cut on a character boundary. */
    char name[701] = "";
    for (int letter = 0; letter < 350; letter++)
        strcat(name, "\xc3\xa9");
    ck_assert_int_eq(client_send(&a, "{\"type\":\"query\",\"session\":1,\"query_version\":2,"
                                     "\"subscriptions\":{\"Item\":[{\"name\":\"%s\","
                                     "\"query\":\"summary == 'x'\"}]}}",
                                 name),
                     0);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 1);
    ck_assert_int_eq(a.frames[0].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    ck_assert_int_eq(a.frames[0].body.query_error.code, PROTOCOL_ERROR_BAD_QUERY);
    client_forget_frames(&a);

    /* The accepted set still applies. */
    client b;
    client_start(&b, &bob, "TRUEPREDICATE");
    ck_assert_int_eq(client_upload(&b, set_field(2, "summary", "\"by bob\"")), 0);
    client_pump(&a);
    ck_assert_uint_eq(client_count(&a, PROTOCOL_MESSAGE_DOWNLOAD), 1);
    client_free(&b);
    client_free(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Uploads and fan-out                                                 */

START_TEST(test_upload_is_acknowledged_with_its_effect)
{
    client a;
    client_start(&a, &alice, "owner_id == 'alice'");

    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "mine")), 0);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 1);
    const protocol_download_body *ack = &a.frames[0].body.download;
    ck_assert_uint_eq(ack->last_integrated_client_version, 1);
    ck_assert_uint_eq(ack->server_version, 1);
    ck_assert_uint_eq(ack->changeset_count, 1);
    ck_assert_uint_eq(ack->changesets[0].changeset.origin, a.file_identity);
    ck_assert_uint_eq(ack->changesets[0].changeset.client_version, 1);
    assert_mirror_is_server(&a);
    client_forget_frames(&a);

    /* Outside the view: refused with a compensating write, then
     * acknowledged with nothing in it. */
    ck_assert_int_eq(client_upload(&a, create_item(2, "bob", "not mine")), 0);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 2);
    assert_error(&a, PROTOCOL_ERROR_COMPENSATING_WRITE, 1);
    ck_assert_uint_eq(a.frames[1].body.download.last_integrated_client_version, 2);
    ck_assert_uint_eq(a.frames[1].body.download.changeset_count, 0);
    ck_assert_uint_eq(a.frames[1].body.download.server_version, 2);
    ck_assert_uint_eq(json_object_size(a.mirror), 1);
    json_t *documents = server_documents();
    ck_assert_uint_eq(json_object_size(documents), 1);
    json_decref(documents);
    client_free(&a);
}
END_TEST

START_TEST(test_fan_out_follows_each_view)
{
    client writer, watcher, stranger;
    client_start(&writer, &alice, "TRUEPREDICATE");
    client_start(&watcher, &bob, "owner_id == 'alice'");
    client_start(&stranger, &bob, "owner_id == 'carol'");

    /* Entered: create and sets. */
    ck_assert_int_eq(client_upload(&writer, create_item(1, "alice", "first")), 0);
    client_pump(&watcher);
    ck_assert_uint_eq(watcher.frame_count, 1);
    const changeset *entered = &watcher.frames[0].body.download.changesets[0].changeset;
    ck_assert_int_eq(entered->instructions[0].operation, CHANGESET_CREATE);
    ck_assert_uint_eq(entered->count, 4);
    ck_assert_uint_eq(entered->origin, writer.file_identity);
    assert_mirror_is_server(&watcher);
    client_forget_frames(&watcher);

    /* Changed: a diff of the one field. */
    ck_assert_int_eq(client_upload(&writer, set_field(1, "summary", "\"second\"")), 0);
    client_pump(&watcher);
    const changeset *changed = &watcher.frames[0].body.download.changesets[0].changeset;
    ck_assert_uint_eq(changed->count, 1);
    ck_assert_int_eq(changed->instructions[0].operation, CHANGESET_SET);
    ck_assert_str_eq(changed->instructions[0].path, "summary");
    assert_mirror_is_server(&watcher);
    client_forget_frames(&watcher);

    /* Left: no longer matching is a delete. */
    ck_assert_int_eq(client_upload(&writer, set_field(1, "owner_id", "\"carol\"")), 0);
    client_pump(&watcher);
    const changeset *left = &watcher.frames[0].body.download.changesets[0].changeset;
    ck_assert_uint_eq(left->count, 1);
    ck_assert_int_eq(left->instructions[0].operation, CHANGESET_DELETE);
    ck_assert_uint_eq(json_object_size(watcher.mirror), 0);
    client_forget_frames(&watcher);

    /* It entered the stranger's view meanwhile; a delete leaves it. */
    client_pump(&stranger);
    ck_assert_uint_eq(client_count(&stranger, PROTOCOL_MESSAGE_DOWNLOAD), 1);
    ck_assert_uint_eq(json_object_size(stranger.mirror), 1);
    ck_assert_int_eq(client_upload(&writer, delete_item(1)), 0);
    client_pump(&stranger);
    ck_assert_uint_eq(json_object_size(stranger.mirror), 0);
    ck_assert_uint_eq(client_pump(&watcher), 0);

    /* A document the schema refuses reaches nobody, and its writer is
     * told; fields the schema does not name (written past it, as the
     * server itself may) are stripped. */
    client_pump(&writer);
    client_forget_frames(&writer);
    client_forget_frames(&watcher);
    char id[64];
    object_id(2, id);
    char instructions[1024];
    snprintf(instructions, sizeof instructions,
             "{\"op\":\"create\",\"collection\":\"Item\",\"id\":%s},%s", id,
             set_field(2, "owner_id", "\"alice\""));
    ck_assert_int_eq(client_upload(&writer, instructions), 0);
    client_pump(&writer);
    ck_assert_uint_eq(client_count(&writer, PROTOCOL_MESSAGE_ERROR), 1);
    ck_assert_int_eq(client_frame(&writer, PROTOCOL_MESSAGE_ERROR, 0)->body.error.code,
                     PROTOCOL_ERROR_COMPENSATING_WRITE);
    ck_assert_uint_eq(client_pump(&watcher), 0);
    format_text(instructions, sizeof instructions, "%s,", create_item(2, "alice", "s"));
    strcat(instructions, set_field(2, "colour", "\"red\""));
    server_write(instructions);
    sync_engine_tick(engine, clock_ms);
    client_pump(&watcher);
    ck_assert_uint_eq(json_object_size(watcher.mirror), 1);
    json_t *mirrored = json_object_iter_value(json_object_iter(watcher.mirror));
    ck_assert_ptr_null(json_object_get(mirrored, "colour"));
    ck_assert_str_eq(json_string_value(json_object_get(mirrored, "summary")), "s");
    client_free(&writer);
    client_free(&watcher);
    client_free(&stranger);
}
END_TEST

START_TEST(test_reupload_is_skipped_and_acknowledged)
{
    client a;
    client_start(&a, &alice, "TRUEPREDICATE");
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "once")), 0);
    /* The acknowledgement is lost with the connection. */
    client_disconnect(&a);
    client_reconnect(&a, &alice);
    ck_assert_int_eq(client_rebind(&a), 0);
    client_pump(&a);
    client_forget_frames(&a);
    a.client_version--;
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "once")), 0);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 1);
    ck_assert_uint_eq(a.frames[0].body.download.last_integrated_client_version, 1);
    ck_assert_uint_eq(a.frames[0].body.download.changeset_count, 0);
    ck_assert_uint_eq(a.frames[0].body.download.server_version, 1);
    ck_assert_uint_eq(metrics_now().changesets_in, 1);
    ck_assert_uint_eq(metrics_now().changesets_skipped, 1);
    ck_assert_uint_eq(metrics_now().server_version, 1);
    client_free(&a);
}
END_TEST

START_TEST(test_catch_up_brings_the_mirror_to_the_server)
{
    write_items(6);
    client a, writer;
    client_start(&a, &alice, "owner_id == 'alice'");
    client_start(&writer, &bob, "TRUEPREDICATE");
    ck_assert_uint_eq(json_object_size(a.mirror), 4);
    client_disconnect(&a);

    /* While a is away: a change, a delete, an object that leaves the view,
     * one that enters it, and one outside it. */
    ck_assert_int_eq(client_upload(&writer, set_field(1, "summary", "\"edited\"")), 0);
    ck_assert_int_eq(client_upload(&writer, delete_item(2)), 0);
    ck_assert_int_eq(client_upload(&writer, set_field(4, "owner_id", "\"bob\"")), 0);
    ck_assert_int_eq(client_upload(&writer, set_field(3, "owner_id", "\"alice\"")), 0);
    ck_assert_int_eq(client_upload(&writer, create_item(7, "bob", "elsewhere")), 0);
    ck_assert_int_eq(client_upload(&writer, set_field(6, "summary", "\"bob's\"")), 0);

    client_reconnect(&a, &alice);
    ck_assert_int_eq(client_rebind(&a), 0);
    client_pump(&a);
    protocol_message *last = &a.frames[a.frame_count - 1];
    ck_assert_int_eq(last->type, PROTOCOL_MESSAGE_DOWNLOAD);
    ck_assert(last->body.download.last_in_batch);
    ck_assert_uint_eq(a.server_version, 12);
    for (int number = 1; number <= 7; number++)
        ck_assert_msg(mirror_has(&a, number) == (number == 1 || number == 3 || number == 5),
                      "item %d", number);
    json_t *documents = server_documents();
    char key[64];
    item_key(1, key);
    assert_same_documents(json_object_get(documents, key), json_object_get(a.mirror, key));
    json_decref(documents);
    client_free(&a);
    client_free(&writer);
}
END_TEST

START_TEST(test_concurrent_writes_converge)
{
    client a, b;
    client_start(&a, &alice, "TRUEPREDICATE");
    client_start(&b, &bob, "TRUEPREDICATE");
    for (int number = 1; number <= 4; number++)
        ck_assert_int_eq(client_upload(&a, create_item(number, "alice", "start")), 0);
    client_pump(&a);
    client_pump(&b);

    /* Neither has seen the other's writes when it makes its own; b's
     * timestamps are later except for item 3. */
    ck_assert_int_eq(client_upload(&a, set_field(1, "summary", "\"a wins?\"")), 0);
    ck_assert_int_eq(client_upload(&a, set_field(2, "isComplete", "true")), 0);
    ck_assert_int_eq(client_upload(&a, delete_item(4)), 0);
    ck_assert_int_eq(client_upload(&b, set_field(1, "summary", "\"b wins\"")), 0);
    ck_assert_int_eq(client_upload(&b, set_field(2, "summary", "\"both survive\"")), 0);
    ck_assert_int_eq(client_upload(&b, set_field(4, "summary", "\"too late\"")), 0);
    clock_ms -= 100;
    ck_assert_int_eq(client_upload(&b, set_field(3, "summary", "\"b early\"")), 0);
    clock_ms += 200;
    ck_assert_int_eq(client_upload(&a, set_field(3, "summary", "\"a late\"")), 0);
    client_pump(&a);
    client_pump(&b);

    assert_mirror_is_server(&a);
    assert_mirror_is_server(&b);
    ck_assert_uint_eq(json_object_size(a.mirror), 3);
    char key[64];
    item_key(1, key);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a.mirror, key), "summary")),
                     "b wins");
    item_key(3, key);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b.mirror, key), "summary")),
                     "a late");
    client_free(&a);
    client_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Idle connections and shutdown                                       */

START_TEST(test_idle_timeout)
{
    client idle, active;
    client_connect(&idle, &alice);
    client_connect(&active, &alice);
    clock_ms += 100000;
    ck_assert_int_eq(client_send(&active, "{\"type\":\"ping\",\"timestamp\":1}"), 0);
    clock_ms += 20000;
    sync_engine_tick(engine, clock_ms);
    client_pump(&idle);
    client_pump(&active);
    assert_error(&idle, PROTOCOL_ERROR_IDLE_TIMEOUT, 0);
    ck_assert_int_eq(sync_engine_close_code(idle.connection), 1001);
    ck_assert_int_eq(sync_engine_close_code(active.connection), 0);
    client_free(&idle);
    client_free(&active);
}
END_TEST

START_TEST(test_shutdown_sends_going_away)
{
    client a;
    client_connect(&a, &alice);
    client_bind_new(&a);
    sync_engine_shutdown(engine);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"ping\",\"timestamp\":1}"),
                     PROTOCOL_ERROR_GOING_AWAY);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 1);
    assert_error(&a, PROTOCOL_ERROR_GOING_AWAY, 0);
    ck_assert_int_eq(sync_engine_close_code(a.connection), 1001);

    client late;
    client_connect(&late, &bob);
    client_pump(&late);
    assert_error(&late, PROTOCOL_ERROR_GOING_AWAY, 0);
    client_free(&late);
    client_free(&a);
}
END_TEST

/* The app's rules for subscriptions: known collections outside
 * development mode, and the indexed queryable field. */
START_TEST(test_query_rules_of_the_app)
{
    char directory[PATH_MAX];
    export_path(directory, "tiered");
    switch_app(directory);
    client a;
    client_connect(&a, &alice);
    client_bind_new(&a);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"query\",\"session\":1,\"query_version\":1,"
                                     "\"subscriptions\":{\"Nope\":[{\"name\":\"n\","
                                     "\"query\":\"TRUEPREDICATE\"}]}}"),
                     0);
    ck_assert_int_eq(client_query(&a, 2, "team == 'x'"), 0);
    client_pump(&a);
    ck_assert_int_eq(a.frames[0].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    ck_assert_str_eq(a.frames[0].body.query_error.message,
                     "Nope: n: the app has no collection \"Nope\"");
    ck_assert_int_eq(a.frames[1].type, PROTOCOL_MESSAGE_DOWNLOAD);
    ck_assert_uint_eq(a.frames[1].body.download.query_version, 2);
    client_free(&a);

    /* The same app with an indexed queryable field. */
    char command[4 * PATH_MAX];
    snprintf(command, sizeof command,
             "cp -r '%s' '%s/app' && sed -i 's/\"queryable_fields_names\"/"
             "\"indexed_queryable_fields_names\": [\"team\"], &/' '%s/app/sync/config.json'",
             directory, data_directory, data_directory);
    ck_assert_int_eq(system(command), 0);
    char copy[PATH_MAX + 8];
    snprintf(copy, sizeof copy, "%s/app", data_directory);
    switch_app(copy);
    ck_assert_str_eq(app_config_indexed_queryable_field(app), "team");
    client_connect(&a, &alice);
    client_bind_new(&a);
    ck_assert_int_eq(client_query(&a, 1, "owner_id == 'alice'"), 0);
    ck_assert_int_eq(client_query(&a, 2, "team == 'x' OR owner_id == 'alice'"), 0);
    ck_assert_int_eq(client_query(&a, 3, "owner_id == 'alice' AND team IN {'x', 'y'}"), 0);
    client_pump(&a);
    ck_assert_int_eq(a.frames[0].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    ck_assert_str_eq(a.frames[0].body.query_error.message,
                     "Item: s: the query must test team, the indexed queryable field, with == "
                     "or IN at its top level (joined with AND)");
    ck_assert_int_eq(a.frames[1].type, PROTOCOL_MESSAGE_QUERY_ERROR);
    ck_assert_int_eq(a.frames[2].type, PROTOCOL_MESSAGE_DOWNLOAD);
    ck_assert_uint_eq(a.frames[2].body.download.query_version, 3);
    client_free(&a);
}
END_TEST

/* Integrate, as the server, Item number with a summary of size bytes. */
static void server_write_large(int number, const char *owner, size_t size)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE] = {0};
    bytes[VALUE_OBJECT_ID_SIZE - 1] = (uint8_t)number; /* the ObjectId object_id() writes */
    json_t *id = value_new_object_id(bytes);
    char *summary = malloc(size + 1);
    ck_assert_ptr_nonnull(summary);
    memset(summary, 's', size);
    summary[size] = '\0';
    json_t *document = json_pack("{s:O, s:b, s:s, s:s}", "_id", id, "isComplete", 0, "owner_id", owner,
                         "summary", summary);
    free(summary);
    changeset changes = {.timestamp = ++clock_ms};
    char message[256];
    ck_assert_int_eq(changeset_diff("Item", id, NULL, document, &changes, message, sizeof message), 0);
    sync_store_integration result = {0};
    ck_assert_int_eq(sync_store_integrate(store, &changes, 1, clock_ms, &result), 0);
    sync_store_integration_clear(&result);
    changeset_clear(&changes);
    json_decref(document);
    json_decref(id);
}

/* Two objects of 9 MiB each enter a view in one upload: the download is
 * split into two frames under the limit. */
START_TEST(test_large_downloads_are_split)
{
    server_write_large(1, "bob", 9 << 20);
    server_write_large(2, "bob", 9 << 20);
    sync_engine_tick(engine, clock_ms);
    client writer, watcher;
    client_start(&writer, &bob, "TRUEPREDICATE");
    client_start(&watcher, &alice, "owner_id == 'alice'");
    char first[512], second[512];
    snprintf(first, sizeof first, "%s", set_field(1, "owner_id", "\"alice\""));
    snprintf(second, sizeof second, "%s", set_field(2, "owner_id", "\"alice\""));
    ck_assert_int_eq(client_send(&writer, "{\"type\":\"upload\",\"session\":1,"
                                          "\"last_integrated_server_version\":0,\"changesets\":["
                                          "{\"origin\":%llu,\"client_version\":1,\"timestamp\":%lld,"
                                          "\"instructions\":[%s]},"
                                          "{\"origin\":%llu,\"client_version\":2,\"timestamp\":%lld,"
                                          "\"instructions\":[%s]}]}",
                                 (unsigned long long)writer.file_identity, (long long)clock_ms + 1,
                                 first, (unsigned long long)writer.file_identity,
                                 (long long)clock_ms + 2, second),
                     0);
    client_pump(&watcher);
    ck_assert_uint_eq(watcher.frame_count, 2);
    ck_assert_uint_eq(watcher.frames[0].body.download.server_version, 3);
    ck_assert_uint_eq(watcher.frames[1].body.download.server_version, 4);
    ck_assert_uint_eq(json_object_size(watcher.mirror), 2);
    assert_mirror_is_server(&watcher);
    client_free(&writer);
    client_free(&watcher);
}
END_TEST

/* A client that does not read is disconnected once too much is queued for
 * it (here 1 MiB), and catches up when it binds again. */
START_TEST(test_a_client_that_does_not_read_is_dropped)
{
    stop_engine();
    start_engine(0, 1 << 20);
    client writer, sleeper;
    client_start(&writer, &bob, "TRUEPREDICATE");
    client_start(&sleeper, &alice, "owner_id == 'alice'");
    for (int number = 1; number <= 9; number++) {
        server_write_large(number, "bob", 128 << 10);
        char change[512];
        snprintf(change, sizeof change, "%s", set_field(number, "owner_id", "\"alice\""));
        ck_assert_int_eq(client_upload(&writer, change), 0);
        client_pump(&writer);
    }
    ck_assert_int_eq(sync_engine_close_code(sleeper.connection), 1001);
    client_forget_frames(&sleeper);
    client_pump(&sleeper);
    ck_assert_uint_eq(sleeper.frame_count, 1);
    assert_error(&sleeper, PROTOCOL_ERROR_GOING_AWAY, 0);
    client_disconnect(&sleeper);

    client_reconnect(&sleeper, &alice);
    ck_assert_int_eq(client_rebind(&sleeper), 0);
    client_pump(&sleeper);
    assert_mirror_is_server(&sleeper);
    client_free(&writer);
    client_free(&sleeper);
}
END_TEST

/* What another process writes to the store (an import) reaches the
 * sessions at the next tick, or before the next upload, as a catch-up. */
START_TEST(test_foreign_writes_are_caught_up)
{
    write_items(3);
    client a, writer;
    client_start(&a, &alice, "owner_id == 'alice'");
    client_start(&writer, &bob, "TRUEPREDICATE");

    server_write(set_field(1, "summary", "\"imported\""));
    ck_assert_uint_eq(client_pump(&a), 0);
    sync_engine_tick(engine, clock_ms);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 1);
    ck_assert_uint_eq(a.server_version, 4);
    client_forget_frames(&a);

    server_write(set_field(2, "summary", "\"imported too\""));
    ck_assert_int_eq(client_upload(&writer, set_field(1, "isComplete", "true")), 0);
    client_pump(&a);
    ck_assert_uint_eq(a.frame_count, 2);
    ck_assert_uint_eq(a.frames[0].body.download.server_version, 5);
    ck_assert_uint_eq(a.frames[1].body.download.server_version, 6);
    json_t *documents = server_documents();
    json_object_del(documents, "{\"$oid\": \"000000000000000000000003\"}"); /* bob's */
    assert_same_maps(documents, a.mirror);
    json_decref(documents);
    client_free(&a);
    client_free(&writer);
}
END_TEST

/* A catch-up finds the objects it sends by their ids, whatever their
 * type: ints, ObjectIds and strings (in a collection without a schema,
 * which development mode allows). */
START_TEST(test_catch_up_finds_every_kind_of_id)
{
    server_write("{\"op\":\"create\",\"collection\":\"Note\",\"id\":5},"
                 "{\"op\":\"create\",\"collection\":\"Note\",\"id\":{\"$oid\":"
                 "\"000000000000000000000001\"}},"
                 "{\"op\":\"create\",\"collection\":\"Note\",\"id\":\"aa\"},"
                 "{\"op\":\"create\",\"collection\":\"Note\",\"id\":\"mm\"},"
                 "{\"op\":\"create\",\"collection\":\"Note\",\"id\":\"zz\"}");
    sync_engine_tick(engine, clock_ms);
    client a;
    client_connect(&a, &alice);
    client_bind_new(&a);
    ck_assert_int_eq(client_send(&a, "{\"type\":\"query\",\"session\":1,\"query_version\":1,"
                                     "\"subscriptions\":{\"Note\":[{\"name\":\"all\","
                                     "\"query\":\"TRUEPREDICATE\"}]}}"),
                     0);
    client_pump(&a);
    ck_assert_uint_eq(json_object_size(json_object_get(a.other_mirrors, "Note")), 5);

    /* Changes while a is away: first to a string only, then to the others. */
    static const char *const rounds[] = {
        "{\"op\":\"set\",\"collection\":\"Note\",\"id\":\"zz\",\"path\":\"t\",\"value\":1}",
        "{\"op\":\"set\",\"collection\":\"Note\",\"id\":5,\"path\":\"t\",\"value\":2},"
        "{\"op\":\"set\",\"collection\":\"Note\",\"id\":{\"$oid\":\"000000000000000000000001\"},"
        "\"path\":\"t\",\"value\":3},"
        "{\"op\":\"delete\",\"collection\":\"Note\",\"id\":\"aa\"},"
        "{\"op\":\"set\",\"collection\":\"Note\",\"id\":\"zz\",\"path\":\"u\",\"value\":4}",
    };
    for (size_t round = 0; round < 2; round++) {
        client_disconnect(&a);
        server_write(rounds[round]);
        client_reconnect(&a, &alice);
        ck_assert_int_eq(client_rebind(&a), 0);
        client_pump(&a);
        json_t *documents = server_collection("Note");
        assert_same_maps(documents, json_object_get(a.other_mirrors, "Note"));
        json_decref(documents);
    }
    client_free(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Roles and rules                                                     */

/* The compensating write the client received index-th. */
static const protocol_compensating_write *compensating_write(client *c, size_t index)
{
    protocol_message *error = client_frame(c, PROTOCOL_MESSAGE_ERROR, index);
    ck_assert_msg(error != NULL, "no compensating write %zu", index);
    ck_assert_int_eq(error->body.error.code, PROTOCOL_ERROR_COMPENSATING_WRITE);
    ck_assert_ptr_nonnull(error->body.error.compensating_write);
    return error->body.error.compensating_write;
}

static void assert_reason(const protocol_compensating_write *write, const char *expected)
{
    ck_assert_msg(strstr(write->reason, expected) != NULL, "reason \"%s\" lacks \"%s\"",
                  write->reason, expected);
}

/* The last frame is the download that acknowledges client version
 * acknowledged, after every error. */
static void assert_acknowledged_last(client *c, uint64_t acknowledged)
{
    ck_assert_uint_gt(c->frame_count, 0);
    protocol_message *last = &c->frames[c->frame_count - 1];
    ck_assert_int_eq(last->type, PROTOCOL_MESSAGE_DOWNLOAD);
    ck_assert_uint_eq(last->body.download.last_integrated_client_version, acknowledged);
}

static void use_export(const char *name)
{
    char directory[PATH_MAX];
    export_path(directory, name);
    switch_app(directory);
}

/* sync-todo's clients a (Alice's) and b (Bob's), where Alice made
 * Item 1, which b received. */
static void start_with_alices_item(client *a, client *b)
{
    use_export("sync-todo");
    client_start(a, &alice, "TRUEPREDICATE");
    client_start(b, &bob, "TRUEPREDICATE");
    ck_assert_int_eq(client_upload(a, create_item(1, alice.id, "alice's")), 0);
    client_pump(a);
    client_pump(b);
}

/* The compensating write of Bob's update of Alice's Item 1, in his
 * changeset client_version. */
static void assert_refused_update(const protocol_compensating_write *write,
                                  uint64_t client_version)
{
    ck_assert_str_eq(write->collection, "Item");
    assert_reason(write, "role \"write-own-items\" may not write this object");
    ck_assert_uint_eq(write->client_version, client_version);
    ck_assert_str_eq(json_string_value(json_object_get(write->server_document, "summary")),
                     "alice's");
}

/* A client that loses its connection right after uploading a refused
 * write, before reading anything, is sent the compensating write again
 * when it binds, before the catch-up that acknowledges the upload; once
 * its progress shows the acknowledgement, never again. */
START_TEST(test_compensating_writes_are_sent_again_until_seen)
{
    client a, b;
    start_with_alices_item(&a, &b);
    ck_assert_int_eq(client_upload(&b, set_field(1, "summary", "\"hacked\"")), 0);
    client_disconnect(&b);

    client_reconnect(&b, &bob);
    ck_assert_int_eq(client_rebind(&b), 0);
    client_pump(&b);
    ck_assert_uint_eq(client_count(&b, PROTOCOL_MESSAGE_ERROR), 1);
    assert_refused_update(compensating_write(&b, 0), 1);
    ck_assert_ptr_nonnull(client_frame(&b, PROTOCOL_MESSAGE_DOWNLOAD, 0));
    ck_assert(client_frame(&b, PROTOCOL_MESSAGE_ERROR, 0) <
              client_frame(&b, PROTOCOL_MESSAGE_DOWNLOAD, 0));
    assert_acknowledged_last(&b, 1);
    client_disconnect(&b);

    client_reconnect(&b, &bob);
    ck_assert_int_eq(client_rebind(&b), 0);
    client_pump(&b);
    ck_assert_uint_eq(client_count(&b, PROTOCOL_MESSAGE_ERROR), 0);
    assert_mirror_is_server(&b);
    client_free(&a);
    client_free(&b);
}
END_TEST

/* sync-todo's Item role "write-own-items": everyone reads every Item,
 * writes only their own.  Bob's forged writes on Alice's items are
 * undone with compensating writes, and Alice never sees them. */
START_TEST(test_writes_the_role_forbids_are_compensated)
{
    client a, b;
    start_with_alices_item(&a, &b);
    ck_assert(mirror_has(&b, 1));
    ck_assert(read_only(&b, 1));
    ck_assert(!read_only(&a, 1));
    client_forget_frames(&a);
    client_forget_frames(&b);

    /* An update of another's object. */
    ck_assert_int_eq(client_upload(&b, set_field(1, "summary", "\"hacked\"")), 0);
    client_pump(&b);
    ck_assert_uint_eq(b.frame_count, 2);
    assert_refused_update(compensating_write(&b, 0), 1);
    assert_acknowledged_last(&b, 1);
    ck_assert_uint_eq(b.frames[1].body.download.changeset_count, 0);
    ck_assert_uint_eq(client_pump(&a), 0);
    client_forget_frames(&b);

    /* Forged creates: an object for Alice, and its own object moved to
     * Alice; then a delete of Alice's. */
    ck_assert_int_eq(client_upload(&b, create_item(2, alice.id, "forged")), 0);
    ck_assert_int_eq(client_upload(&b, create_item(3, bob.id, "bob's")), 0);
    ck_assert_int_eq(client_upload(&b, set_field(3, "owner_id", "\"someone else\"")), 0);
    ck_assert_int_eq(client_upload(&b, delete_item(1)), 0);
    client_pump(&b);
    ck_assert_uint_eq(client_count(&b, PROTOCOL_MESSAGE_ERROR), 3);
    const protocol_compensating_write *write = compensating_write(&b, 0);
    assert_reason(write, "could not write the object as the change leaves it");
    ck_assert_ptr_null(write->server_document);
    ck_assert_uint_eq(write->client_version, 2);
    write = compensating_write(&b, 1);
    assert_reason(write, "could not write the object as the change leaves it");
    ck_assert_str_eq(json_string_value(json_object_get(write->server_document, "owner_id")),
                     bob.id);
    ck_assert_uint_eq(write->client_version, 4);
    assert_reason(compensating_write(&b, 2), "may not write this object");
    assert_acknowledged_last(&b, 5);
    client_pump(&a);
    ck_assert(!mirror_has(&a, 2));
    ck_assert(mirror_has(&a, 3));
    ck_assert(read_only(&a, 3));
    ck_assert_str_eq(json_string_value(json_object_get(mirrored_item(&a, 3), "owner_id")), bob.id);
    ck_assert(mirror_has(&a, 1));
    assert_mirror_is_server(&a);
    client_forget_frames(&a);
    client_forget_frames(&b);

    /* One changeset, two objects: the allowed one integrates. */
    char both[1024];
    snprintf(both, sizeof both, "%s,", set_field(3, "summary", "\"edited\""));
    strcat(both, set_field(1, "summary", "\"again\""));
    ck_assert_int_eq(client_upload(&b, both), 0);
    client_pump(&b);
    ck_assert_uint_eq(client_count(&b, PROTOCOL_MESSAGE_ERROR), 1);
    assert_acknowledged_last(&b, 6);
    client_pump(&a);
    ck_assert_uint_eq(client_count(&a, PROTOCOL_MESSAGE_DOWNLOAD), 1);
    const changeset *seen = &a.frames[0].body.download.changesets[0].changeset;
    ck_assert_uint_eq(seen->count, 1);
    ck_assert_str_eq(json_string_value(seen->instructions[0].value), "edited");
    assert_mirror_is_server(&a);
    assert_mirror_is_server(&b);
    client_free(&a);
    client_free(&b);
}
END_TEST

/* A write outside the session's view is refused, even one the role
 * allows: the client could not have been given what it changes. */
START_TEST(test_writes_outside_the_view_are_compensated)
{
    use_export("sync-todo");
    client b;
    client_start(&b, &bob, NULL);
    ck_assert_int_eq(client_upload(&b, create_item(1, bob.id, "unseen")), 0);
    client_pump(&b);
    assert_reason(compensating_write(&b, 0), "outside the session's view");
    assert_acknowledged_last(&b, 1);
    client_forget_frames(&b);

    char query[128];
    snprintf(query, sizeof query, "owner_id == '%s'", bob.id);
    ck_assert_int_eq(client_query(&b, 1, query), 0);
    ck_assert_int_eq(client_upload(&b, create_item(1, bob.id, "seen")), 0);
    client_pump(&b);
    ck_assert_uint_eq(client_count(&b, PROTOCOL_MESSAGE_ERROR), 0);
    ck_assert(mirror_has(&b, 1));
    ck_assert(!read_only(&b, 1));
    client_free(&b);
}
END_TEST

/* Writes to an object that is gone change nothing and are not errors
 * (the writer did not know); they do not linger either, so that a forged
 * later clock cannot fill the object when it is created again. */
START_TEST(test_writes_to_deleted_objects_are_dropped)
{
    client a, b;
    client_start(&a, &alice, "TRUEPREDICATE");
    client_start(&b, &bob, "TRUEPREDICATE");
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "first life")), 0);
    ck_assert_int_eq(client_upload(&a, delete_item(1)), 0);
    clock_ms += 1000000;
    ck_assert_int_eq(client_upload(&b, set_field(1, "summary", "\"from the future\"")), 0);
    ck_assert_int_eq(client_upload(&b, delete_item(1)), 0);
    clock_ms -= 1000000;
    client_pump(&b);
    ck_assert_uint_eq(client_count(&b, PROTOCOL_MESSAGE_ERROR), 0);
    assert_acknowledged_last(&b, 2);
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "second life")), 0);
    client_pump(&a);
    client_pump(&b);
    ck_assert_str_eq(json_string_value(json_object_get(mirrored_item(&b, 1), "summary")),
                     "second life");
    assert_mirror_is_server(&a);
    assert_mirror_is_server(&b);
    client_free(&a);
    client_free(&b);
}
END_TEST

/* A collection no role applies to may be subscribed to; the view holds
 * nothing of it, and every write to it is refused. */
START_TEST(test_no_role_no_access)
{
    char directory[PATH_MAX];
    copy_export("sync-todo", "edge-only", SYNC_TODO_ITEM_RULES,
                item_rules("{\"name\": \"edge\", \"apply_when\": {\"%%user.type\": \"edge\"}, "
                           "\"document_filters\": {\"read\": true, \"write\": true}, "
                           "\"read\": true, \"write\": true}"),
                directory);
    switch_app(directory);
    write_items(3);
    client b;
    client_start(&b, &bob, "TRUEPREDICATE");
    ck_assert_uint_eq(json_object_size(b.mirror), 0);
    ck_assert_int_eq(client_upload(&b, create_item(9, bob.id, "mine?")), 0);
    client_pump(&b);
    assert_reason(compensating_write(&b, 0), "no role of the user applies to collection \"Item\"");
    assert_acknowledged_last(&b, 1);
    client_free(&b);
}
END_TEST

/* Field-level permissions: summary is not readable (additional_fields
 * grant nothing), isComplete readable but not writable. */
START_TEST(test_field_permissions)
{
    char directory[PATH_MAX];
    copy_export("sync-todo", "fields", SYNC_TODO_ITEM_RULES,
                item_rules("{\"name\": \"limited\", \"apply_when\": {}, "
                           "\"document_filters\": {\"read\": true, \"write\": true}, "
                           "\"read\": false, \"write\": false, "
                           "\"fields\": {\"owner_id\": {\"read\": true, \"write\": true}, "
                           "\"isComplete\": {\"read\": true, \"write\": false}}}"),
                directory);
    switch_app(directory);
    write_items(2);
    client a;
    client_start(&a, &alice, "TRUEPREDICATE");
    ck_assert_uint_eq(json_object_size(a.mirror), 2);
    const json_t *item = mirrored_item(&a, 1);
    ck_assert_ptr_null(json_object_get(item, "summary"));
    ck_assert_ptr_nonnull(json_object_get(item, "isComplete"));
    ck_assert_ptr_nonnull(json_object_get(item, "owner_id"));

    /* A change to an unreadable field reaches nobody; to a readable one,
     * without the other. */
    server_write(set_field(1, "summary", "\"secret\""));
    sync_engine_tick(engine, clock_ms);
    client_pump(&a);
    ck_assert_ptr_null(json_object_get(mirrored_item(&a, 1), "summary"));
    client_forget_frames(&a);

    ck_assert_int_eq(client_upload(&a, set_field(1, "isComplete", "true")), 0);
    ck_assert_int_eq(client_upload(&a, set_field(1, "owner_id", "\"carol\"")), 0);
    client_pump(&a);
    ck_assert_uint_eq(client_count(&a, PROTOCOL_MESSAGE_ERROR), 1);
    const protocol_compensating_write *write = compensating_write(&a, 0);
    assert_reason(write, "may not write field \"isComplete\"");
    ck_assert_ptr_null(json_object_get(write->server_document, "summary"));
    ck_assert_str_eq(json_string_value(json_object_get(mirrored_item(&a, 1), "owner_id")),
                     "carol");
    ck_assert_ptr_null(json_object_get(mirrored_item(&a, 1), "summary"));
    client_free(&a);
}
END_TEST

/* The indexed queryable field never changes once an object has it. */
START_TEST(test_indexed_queryable_field_cannot_change)
{
    char directory[PATH_MAX];
    copy_export("sync-todo", "indexed", SYNC_TODO_ITEM_RULES, item_rules(EVERYONE_ROLE),
                directory);
    run_shell("sed -i 's/\"queryable_fields_names\"/"
              "\"indexed_queryable_fields_names\": [\"owner_id\"], &/' '%s/sync/config.json'",
              directory);
    switch_app(directory);
    client a;
    client_start(&a, &alice, "owner_id IN {'alice', 'bob'}");
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "x")), 0);
    ck_assert_int_eq(client_upload(&a, set_field(1, "owner_id", "\"bob\"")), 0);
    client_pump(&a);
    ck_assert_uint_eq(client_count(&a, PROTOCOL_MESSAGE_ERROR), 1);
    assert_reason(compensating_write(&a, 0), "indexed queryable field");
    ck_assert_str_eq(json_string_value(json_object_get(mirrored_item(&a, 1), "owner_id")),
                     "alice");
    assert_mirror_is_server(&a);
    client_free(&a);
}
END_TEST

/* tiered: a user reads the items of the team their custom user data
 * (collection User, _id the user id) names.  Changing it moves items in
 * and out of a bound session's view, and of a file served again. */
START_TEST(test_custom_user_data_changes_access)
{
    use_export("tiered");
    char instructions[4096];
    static const char *const teams[] = {"red", "blue", "red", "blue"};
    for (int number = 1; number <= 4; number++) {
        char id[64];
        object_id(number, id);
        snprintf(instructions, sizeof instructions,
                 "{\"op\":\"create\",\"collection\":\"Item\",\"id\":%s},"
                 "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"owner_id\","
                 "\"value\":\"%s\"},"
                 "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"name\","
                 "\"value\":\"item %d\"},"
                 "{\"op\":\"set\",\"collection\":\"Item\",\"id\":%s,\"path\":\"team\","
                 "\"value\":\"%s\"}",
                 id, id, bob.id, id, number, id, teams[number - 1]);
        server_write(instructions);
    }
    snprintf(instructions, sizeof instructions,
             "{\"op\":\"create\",\"collection\":\"User\",\"id\":\"%s\"},"
             "{\"op\":\"set\",\"collection\":\"User\",\"id\":\"%s\",\"path\":\"team\","
             "\"value\":\"red\"}",
             alice.id, alice.id);
    server_write(instructions);
    sync_engine_tick(engine, clock_ms);

    client a;
    client_start(&a, &alice, "team IN {'red', 'blue'}");
    for (int number = 1; number <= 4; number++)
        ck_assert_msg(mirror_has(&a, number) == (number % 2 == 1), "item %d", number);
    ck_assert(read_only(&a, 1)); /* the "user" role writes only its own */

    /* Alice moves to the blue team while bound. */
    snprintf(instructions, sizeof instructions,
             "{\"op\":\"set\",\"collection\":\"User\",\"id\":\"%s\",\"path\":\"team\","
             "\"value\":\"blue\"}",
             alice.id);
    server_write(instructions);
    sync_engine_tick(engine, clock_ms);
    client_pump(&a);
    for (int number = 1; number <= 4; number++)
        ck_assert_msg(mirror_has(&a, number) == (number % 2 == 0), "item %d", number);
    ck_assert(read_only(&a, 2));

    /* And back to red while away: the bind sends the difference. */
    client_disconnect(&a);
    snprintf(instructions, sizeof instructions,
             "{\"op\":\"set\",\"collection\":\"User\",\"id\":\"%s\",\"path\":\"team\","
             "\"value\":\"red\"}",
             alice.id);
    server_write(instructions);
    client_reconnect(&a, &alice);
    ck_assert_int_eq(client_rebind(&a), 0);
    client_pump(&a);
    for (int number = 1; number <= 4; number++)
        ck_assert_msg(mirror_has(&a, number) == (number % 2 == 1), "item %d", number);
    client_free(&a);
}
END_TEST

/* custom_user_data.json may name another field than _id: the document
 * whose field holds the user id is found by a scan. */
START_TEST(test_custom_user_data_found_by_another_field)
{
    char directory[PATH_MAX];
    copy_export("tiered", "by-field", "auth/custom_user_data.json",
                "{\"enabled\": true, \"mongo_service_name\": \"mongodb-atlas\", "
                "\"database_name\": \"Item\", \"collection_name\": \"User\", "
                "\"user_id_field\": \"user_id\"}",
                directory);
    switch_app(directory);
    char instructions[2048];
    format_text(instructions, sizeof instructions,
                "{\"op\":\"create\",\"collection\":\"User\",\"id\":1},"
                "{\"op\":\"set\",\"collection\":\"User\",\"id\":1,\"path\":\"user_id\","
                "\"value\":\"%s\"},"
                "{\"op\":\"create\",\"collection\":\"User\",\"id\":2},"
                "{\"op\":\"set\",\"collection\":\"User\",\"id\":2,\"path\":\"user_id\","
                "\"value\":\"%s\"},"
                "{\"op\":\"set\",\"collection\":\"User\",\"id\":2,\"path\":\"team\","
                "\"value\":\"red\"},"
                "{\"op\":\"create\",\"collection\":\"Item\",\"id\":{\"$oid\":"
                "\"000000000000000000000001\"}},"
                "{\"op\":\"set\",\"collection\":\"Item\",\"id\":{\"$oid\":"
                "\"000000000000000000000001\"},\"path\":\"team\",\"value\":\"red\"},"
                "{\"op\":\"set\",\"collection\":\"Item\",\"id\":{\"$oid\":"
                "\"000000000000000000000001\"},\"path\":\"name\",\"value\":\"n\"},"
                "{\"op\":\"set\",\"collection\":\"Item\",\"id\":{\"$oid\":"
                "\"000000000000000000000001\"},\"path\":\"owner_id\",\"value\":\"x\"}",
                bob.id, alice.id);
    server_write(instructions);
    sync_engine_tick(engine, clock_ms);
    client a;
    client_start(&a, &alice, "team == 'red'");
    ck_assert(mirror_has(&a, 1));
    client b;
    client_start(&b, &bob, "team == 'red'");
    ck_assert(!mirror_has(&b, 1));
    client_free(&a);
    client_free(&b);
}
END_TEST

/* In Development Mode a write may add a field; every session is sent
 * the new schemas. */
START_TEST(test_schema_growth_is_announced)
{
    client writer, watcher;
    client_start(&writer, &alice, "TRUEPREDICATE");
    client_start(&watcher, &bob, "TRUEPREDICATE");
    ck_assert_int_eq(client_upload(&writer, create_item(1, "alice", "x")), 0);
    client_pump(&watcher);
    client_forget_frames(&watcher);
    ck_assert_int_eq(client_upload(&writer, set_field(1, "priority", "3")), 0);
    client_pump(&writer);
    client_pump(&watcher);
    protocol_message *schema_message = client_frame(&watcher, PROTOCOL_MESSAGE_SCHEMA, 0);
    ck_assert_ptr_nonnull(schema_message);
    const json_t *item = json_object_get(schema_message->body.schema.collections, "Item");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(item, "properties"), "priority"));
    ck_assert_ptr_nonnull(client_frame(&writer, PROTOCOL_MESSAGE_SCHEMA, 0));
    ck_assert_int_eq(json_integer_value(json_object_get(mirrored_item(&watcher, 1), "priority")),
                     3);
    client_free(&writer);
    client_free(&watcher);
}
END_TEST

/* Outside Development Mode a write that does not fit the schema is
 * refused. */
START_TEST(test_writes_that_do_not_fit_the_schema_are_compensated)
{
    switch_to_strict_app();
    client a;
    client_start(&a, &alice, "TRUEPREDICATE");
    ck_assert_int_eq(client_upload(&a, create_item(1, "alice", "x")), 0);
    ck_assert_int_eq(client_upload(&a, set_field(1, "isComplete", "\"yes\"")), 0);
    ck_assert_int_eq(client_upload(&a, set_field(1, "priority", "3")), 0);
    client_pump(&a);
    ck_assert_uint_eq(client_count(&a, PROTOCOL_MESSAGE_ERROR), 2);
    assert_reason(compensating_write(&a, 0), "isComplete");
    assert_reason(compensating_write(&a, 1), "priority");
    ck_assert(json_is_false(json_object_get(mirrored_item(&a, 1), "isComplete")));
    assert_mirror_is_server(&a);
    client_free(&a);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("sync_engine");
    TCase *sessions = tcase_create("sessions");
    tcase_add_unchecked_fixture(sessions, make_base_directory, remove_base_directory);
    tcase_add_checked_fixture(sessions, setup, teardown);
    tcase_add_test(sessions, test_bind_new_file_gets_an_identity);
    tcase_add_test(sessions, test_bind_refusals);
    tcase_add_test(sessions, test_ping_pong);
    tcase_add_test(sessions, test_malformed_input_closes_only_that_connection);
    tcase_add_test(sessions, test_bad_changesets_end_the_session);
    tcase_add_test(sessions, test_idle_timeout);
    tcase_add_test(sessions, test_shutdown_sends_going_away);
    suite_add_tcase(suite, sessions);

    TCase *sync = tcase_create("sync");
    tcase_add_unchecked_fixture(sync, make_base_directory, remove_base_directory);
    tcase_add_checked_fixture(sync, setup, teardown);
    tcase_add_test(sync, test_bootstrap_in_batches);
    tcase_add_test(sync, test_refused_query_keeps_the_old_set);
    tcase_add_test(sync, test_upload_is_acknowledged_with_its_effect);
    tcase_add_test(sync, test_fan_out_follows_each_view);
    tcase_add_test(sync, test_reupload_is_skipped_and_acknowledged);
    tcase_add_test(sync, test_catch_up_brings_the_mirror_to_the_server);
    tcase_add_test(sync, test_concurrent_writes_converge);
    tcase_add_test(sync, test_query_rules_of_the_app);
    tcase_add_test(sync, test_foreign_writes_are_caught_up);
    tcase_add_test(sync, test_catch_up_finds_every_kind_of_id);
    tcase_add_test(sync, test_large_downloads_are_split);
    tcase_add_test(sync, test_a_client_that_does_not_read_is_dropped);
    suite_add_tcase(suite, sync);

    TCase *rules = tcase_create("rules");
    tcase_add_unchecked_fixture(rules, make_base_directory, remove_base_directory);
    tcase_add_checked_fixture(rules, setup, teardown);
    tcase_add_test(rules, test_writes_the_role_forbids_are_compensated);
    tcase_add_test(rules, test_compensating_writes_are_sent_again_until_seen);
    tcase_add_test(rules, test_writes_outside_the_view_are_compensated);
    tcase_add_test(rules, test_no_role_no_access);
    tcase_add_test(rules, test_writes_to_deleted_objects_are_dropped);
    tcase_add_test(rules, test_field_permissions);
    tcase_add_test(rules, test_indexed_queryable_field_cannot_change);
    tcase_add_test(rules, test_custom_user_data_changes_access);
    tcase_add_test(rules, test_custom_user_data_found_by_another_field);
    tcase_add_test(rules, test_schema_growth_is_announced);
    tcase_add_test(rules, test_writes_that_do_not_fit_the_schema_are_compensated);
    suite_add_tcase(suite, rules);
    return suite;
}

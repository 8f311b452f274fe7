/*
 * Unit tests of a synced store's sync state (store.h, "Sync state"): the
 * outbox a local write fills, held deletes, subscriptions, query results,
 * and applying downloads on top of pending local changes.
 *
 * Each test gets a fresh synced store in its own temporary directory.
 */
#include "realmfs/ejson.h"
#include "realmfs/store.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char store_directory[PATH_MAX];
static store *test_store;

static int remove_entry(const char *path, const struct stat *status, int type, struct FTW *walk)
{
    (void)status;
    (void)type;
    (void)walk;
    return remove(path);
}

static void open_synced(bool synced)
{
    store_options options = { .synced = synced };
    int result = store_open(store_directory, &options, &test_store);
    ck_assert_msg(result == 0, "store_open: %s", store_last_error());
}

static void setup(void)
{
    snprintf(store_directory, sizeof store_directory, "/tmp/realmfs-test-store-sync-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(store_directory));
    open_synced(true);
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
}

static void teardown(void)
{
    store_close(test_store);
    test_store = NULL;
    nftw(store_directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void reopen(bool synced)
{
    store_close(test_store);
    open_synced(synced);
}

static int64_t wall_clock_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* Writes a document given as JSON text (ids are ints here); its canonical
 * pretty text is what the mount stores. */
static void put_document(const char *json)
{
    ejson_error error;
    json_t *document = ejson_parse(json, strlen(json), &error);
    ck_assert_msg(document != NULL, "%s", error.message);
    size_t size;
    char *text = ejson_format_pretty(document, &size);
    int result = store_put_object(test_store, "Task", json_object_get(document, "_id"), text,
                                  size, 1, NULL);
    ck_assert_msg(result == 0, "put: %s", store_last_error());
    free(text);
    json_decref(document);
}

/* The visible document of Task id, as one-line canonical text, or NULL
 * when there is none. */
static char *visible_line(json_int_t id)
{
    json_t *key = json_integer(id);
    char *text = NULL;
    int result = store_get_object(test_store, "Task", key, &text, NULL);
    json_decref(key);
    if (result == -ENOENT)
        return NULL;
    ck_assert_int_eq(result, 0);
    ejson_error error;
    json_t *document = ejson_parse(text, strlen(text), &error);
    ck_assert_ptr_nonnull(document);
    char *line = ejson_format_line(document, NULL);
    json_decref(document);
    free(text);
    return line;
}

static void assert_visible(json_int_t id, const char *expected)
{
    char *line = visible_line(id);
    if (expected == NULL)
        ck_assert_msg(line == NULL, "object %lld should not exist: %s", (long long)id, line);
    else
        ck_assert_msg(line != NULL && strcmp(line, expected) == 0, "object %lld: %s, not %s",
                      (long long)id, line ? line : "(none)", expected);
    free(line);
}

static store_sync_progress progress(void)
{
    store_sync_progress current;
    ck_assert_int_eq(store_get_sync_progress(test_store, &current), 0);
    return current;
}

/* The outbox as JSON text: an array of the changesets' JSON forms. */
static int collect_changeset(const changeset *queued, void *context)
{
    json_array_append_new(context, changeset_to_json(queued));
    return 0;
}

static json_t *outbox_at(int64_t now)
{
    json_t *changesets = json_array();
    int visited = store_scan_outbox(test_store, 0, 0, now, collect_changeset, changesets);
    ck_assert_msg(visited >= 0, "scan: %s", store_last_error());
    ck_assert_int_eq((size_t)visited, json_array_size(changesets));
    return changesets;
}

/* The instructions of an outbox changeset as compact JSON text. */
static char *instructions_of(json_t *changesets, size_t index)
{
    json_t *changeset = json_array_get(changesets, index);
    ck_assert_ptr_nonnull(changeset);
    return json_dumps(json_object_get(changeset, "instructions"), JSON_COMPACT);
}

static void assert_instructions(json_t *changesets, size_t index, const char *expected)
{
    char *text = instructions_of(changesets, index);
    ck_assert_str_eq(text, expected);
    free(text);
}

/* A download changeset from its JSON form. */
static void add_download_changeset(protocol_download_body *download, uint64_t server_version,
                                   const char *json)
{
    json_error_t json_error;
    json_t *parsed = json_loads(json, 0, &json_error);
    ck_assert_msg(parsed != NULL, "%s", json_error.text);
    changeset changes;
    char message[256];
    ck_assert_msg(changeset_parse(parsed, &changes, message, sizeof message) == 0, "%s", message);
    json_decref(parsed);
    ck_assert_int_eq(protocol_download_add(download, server_version, &changes), 0);
}

static size_t apply(protocol_download_body *download)
{
    store_download_change *changes;
    size_t count;
    int result = store_apply_download(test_store, download, &changes, &count);
    ck_assert_msg(result == 0, "apply: %s", store_last_error());
    store_free_download_changes(changes, count);
    protocol_message message = { .type = PROTOCOL_MESSAGE_DOWNLOAD, .body.download = *download };
    protocol_message_clear(&message);
    memset(download, 0, sizeof *download);
    return count;
}

static protocol_download_body steady_download(uint64_t server_version, uint64_t acknowledged)
{
    return (protocol_download_body){
        .server_version = server_version,
        .last_integrated_client_version = acknowledged,
        .last_in_batch = true,
        .progress_estimate = 1.0,
    };
}

#define REMOTE_CREATE_1 \
    "{\"origin\": 9, \"client_version\": 1, \"timestamp\": 1000, \"instructions\": [" \
    "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 1}," \
    "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"a\", \"value\": \"base\"}]}"

/* The store bound as file 1, with REMOTE_CREATE_1 applied at server
 * version 1; an empty download to reuse. */
static protocol_download_body bind_with_object_1(void)
{
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    protocol_download_body download = steady_download(1, 0);
    add_download_changeset(&download, 1, REMOTE_CREATE_1);
    apply(&download);
    return download;
}

/* ------------------------------------------------------------------ */
/* Queuing local writes                                                */

START_TEST(test_put_queues_diff_and_noop_queues_nothing)
{
    put_document("{\"_id\": 1, \"a\": 1, \"b\": 2}");
    put_document("{\"_id\": 1, \"a\": 1, \"b\": 3}");
    put_document("{\"_id\": 1, \"a\": 1, \"b\": 3}");
    ck_assert_uint_eq(progress().outbox_changesets, 2);
    ck_assert_uint_eq(progress().next_client_version, 3);
    ck_assert_int_eq(store_scan_outbox(test_store, 0, 0, wall_clock_ms(), collect_changeset,
                                       NULL), -EAGAIN);
    ck_assert_int_eq(store_set_file_identity(test_store, 42), 0);
    ck_assert_int_eq(store_set_file_identity(test_store, 43), -EEXIST);
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 2);
    assert_instructions(outbox, 0,
                        "[{\"op\":\"create\",\"collection\":\"Task\",\"id\":1},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"a\",\"value\":1},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"b\",\"value\":2}]");
    assert_instructions(outbox, 1,
                        "[{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"b\",\"value\":3}]");
    json_t *first = json_array_get(outbox, 0), *second = json_array_get(outbox, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "origin")), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "client_version")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(second, "client_version")), 2);
    ck_assert_int_lt(json_integer_value(json_object_get(first, "timestamp")),
                     json_integer_value(json_object_get(second, "timestamp")));
    json_decref(outbox);

    /* after and max_changesets */
    json_t *rest = json_array();
    ck_assert_int_eq(store_scan_outbox(test_store, 1, 0, wall_clock_ms(), collect_changeset, rest), 1);
    ck_assert_int_eq(store_scan_outbox(test_store, 0, 1, wall_clock_ms(), collect_changeset, rest), 1);
    ck_assert_uint_eq(json_array_size(rest), 2);
    json_decref(rest);
}
END_TEST

START_TEST(test_rename_queues_delete_and_create)
{
    put_document("{\"_id\": 1, \"a\": 1}");
    json_t *old_id = json_integer(1), *new_id = json_integer(2);
    const char *text = "{\n  \"_id\": 2,\n  \"a\": 1\n}\n";
    ck_assert_int_eq(store_rename_object(test_store, "Task", old_id, new_id, text, strlen(text), 1,
                                         NULL), 0);
    ck_assert_int_eq(store_delete_object(test_store, "Task", new_id), 0);
    json_decref(old_id);
    json_decref(new_id);
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 3);
    assert_instructions(outbox, 1,
                        "[{\"op\":\"delete\",\"collection\":\"Task\",\"id\":1},"
                        "{\"op\":\"create\",\"collection\":\"Task\",\"id\":2},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":2,\"path\":\"a\",\"value\":1}]");
    assert_instructions(outbox, 2, "[{\"op\":\"delete\",\"collection\":\"Task\",\"id\":2}]");
    json_decref(outbox);
}
END_TEST

START_TEST(test_held_delete_and_create_merge_into_one_update)
{
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    put_document("{\"_id\": 1, \"a\": 1, \"b\": 1}");
    json_t *id = json_integer(1);
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", id), 0);
    assert_visible(1, NULL);
    /* a young held delete is not uploaded yet, an old one is */
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 1);
    json_decref(outbox);
    outbox = outbox_at(wall_clock_ms() + STORE_HELD_DELETE_MS + 1000);
    ck_assert_uint_eq(json_array_size(outbox), 2);
    assert_instructions(outbox, 1, "[{\"op\":\"delete\",\"collection\":\"Task\",\"id\":1}]");
    json_decref(outbox);

    put_document("{\"_id\": 1, \"a\": 1, \"b\": 2}");
    outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 2);
    assert_instructions(outbox, 1,
                        "[{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"b\",\"value\":2}]");
    json_decref(outbox);

    /* the same content again: the save cycle queues nothing at all */
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", id), 0);
    put_document("{\"_id\": 1, \"a\": 1, \"b\": 2}");
    ck_assert_uint_eq(progress().outbox_changesets, 2);

    /* a write of another object in between: the held delete is still the
     * newest changeset of its object, so the two still merge */
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", id), 0);
    put_document("{\"_id\": 2}");
    put_document("{\"_id\": 1, \"a\": 5}");
    ck_assert_uint_eq(progress().outbox_changesets, 4);
    outbox = outbox_at(wall_clock_ms() + STORE_HELD_DELETE_MS + 1000);
    assert_instructions(outbox, 3,
                        "[{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"a\",\"value\":5},"
                        "{\"op\":\"unset\",\"collection\":\"Task\",\"id\":1,\"path\":\"b\"}]");
    json_decref(outbox);
    json_decref(id);
}
END_TEST

START_TEST(test_held_delete_merges_only_while_newest_for_its_object)
{
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    put_document("{\"_id\": 1, \"a\": 1}");
    put_document("{\"_id\": 3, \"a\": 3}");
    json_t *one = json_integer(1), *three = json_integer(3);
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", one), 0);
    /* the scan stops at the young held delete: nothing after it leaves */
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 2);
    json_decref(outbox);
    /* a rename onto the object (an editor's "rename the new file over the
     * original") merges with the held delete too ... */
    const char *text = "{\n  \"_id\": 1,\n  \"a\": 3\n}\n";
    ck_assert_int_eq(store_rename_object(test_store, "Task", three, one, text, strlen(text), 1,
                                         NULL), 0);
    outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 3);
    assert_instructions(outbox, 2,
                        "[{\"op\":\"delete\",\"collection\":\"Task\",\"id\":3},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"a\",\"value\":3}]");
    json_decref(outbox);
    /* ... but a delete that is not held is never merged */
    ck_assert_int_eq(store_delete_object(test_store, "Task", one), 0);
    put_document("{\"_id\": 1, \"a\": 1}");
    ck_assert_uint_eq(progress().outbox_changesets, 5);
    outbox = outbox_at(wall_clock_ms());
    assert_instructions(outbox, 4,
                        "[{\"op\":\"create\",\"collection\":\"Task\",\"id\":1},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"a\",\"value\":1}]");
    json_decref(outbox);
    json_decref(one);
    json_decref(three);
}
END_TEST

START_TEST(test_unsynced_store_has_no_sync_state)
{
    store_close(test_store);
    char plain[PATH_MAX + sizeof "/plain"];
    snprintf(plain, sizeof plain, "%s/plain", store_directory);
    ck_assert_int_eq(store_open(plain, NULL, &test_store), 0);
    store_sync_progress current;
    ck_assert_int_eq(store_get_sync_progress(test_store, &current), -EINVAL);
    ck_assert_int_eq(store_put_subscription(test_store, "Task", "all", "TRUEPREDICATE"), -EINVAL);
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    put_document("{\"_id\": 1}");
    json_t *id = json_integer(1);
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", id), 0);
    json_decref(id);
}
END_TEST

START_TEST(test_existing_objects_are_queued_when_a_store_becomes_synced)
{
    store_close(test_store);
    char plain[PATH_MAX + sizeof "/plain"];
    snprintf(plain, sizeof plain, "%s/plain", store_directory);
    ck_assert_int_eq(store_open(plain, NULL, &test_store), 0);
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    put_document("{\"_id\": 1, \"a\": 1}");
    put_document("{\"_id\": 2, \"a\": 2}");
    store_close(test_store);
    store_options options = { .synced = true };
    ck_assert_int_eq(store_open(plain, &options, &test_store), 0);
    ck_assert_uint_eq(progress().outbox_changesets, 2);
    /* once synced, always synced: a plain open still queues */
    store_close(test_store);
    ck_assert_int_eq(store_open(plain, NULL, &test_store), 0);
    put_document("{\"_id\": 2, \"a\": 3}");
    ck_assert_uint_eq(progress().outbox_changesets, 3);
}
END_TEST

START_TEST(test_outbox_entry_survives_a_crash_after_the_put)
{
    store_close(test_store);
    test_store = NULL;
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        open_synced(true);
        put_document("{\"_id\": 7, \"a\": \"kept\"}");
        raise(SIGKILL);
        _exit(1);
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    open_synced(true);
    ck_assert_uint_eq(progress().outbox_changesets, 1);
    ck_assert_int_eq(store_set_file_identity(test_store, 3), 0);
    json_t *outbox = outbox_at(wall_clock_ms());
    assert_instructions(outbox, 0,
                        "[{\"op\":\"create\",\"collection\":\"Task\",\"id\":7},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":7,\"path\":\"a\",\"value\":\"kept\"}]");
    json_decref(outbox);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Subscriptions and query results                                     */

static int list_subscription(const char *collection, const char *name, const char *query,
                             void *context)
{
    char line[512];
    snprintf(line, sizeof line, "%s/%s=%s;", collection, name, query);
    strcat(context, line);
    return 0;
}

START_TEST(test_subscriptions)
{
    ck_assert_uint_eq(progress().subscriptions_version, 0);
    ck_assert_int_eq(store_put_subscription(test_store, "Task", "mine", "owner == 'me'"), 0);
    ck_assert_int_eq(store_put_subscription(test_store, "Item", "all", "TRUEPREDICATE"), 0);
    ck_assert_uint_eq(progress().subscriptions_version, 2);
    ck_assert_int_eq(store_put_subscription(test_store, "Task", "mine", "owner == 'me'"), 0);
    ck_assert_uint_eq(progress().subscriptions_version, 2);
    ck_assert_int_eq(store_put_subscription(test_store, "Task", "bad/name", "x == 1"), -EINVAL);
    ck_assert_int_eq(store_put_subscription(test_store, "Task", "empty", ""), -EINVAL);

    char *query;
    ck_assert_int_eq(store_get_subscription(test_store, "Task", "mine", &query), 0);
    ck_assert_str_eq(query, "owner == 'me'");
    free(query);
    ck_assert_int_eq(store_get_subscription(test_store, "Task", "other", &query), -ENOENT);

    ck_assert_int_eq(store_rename_subscription(test_store, "Task", "mine", "ours"), 0);
    ck_assert_int_eq(store_rename_subscription(test_store, "Task", "mine", "x"), -ENOENT);
    ck_assert_int_eq(store_rename_subscription(test_store, "Task", "ours", "ours"), 0);
    ck_assert_uint_eq(progress().subscriptions_version, 3);
    char listing[1024] = "";
    ck_assert_int_eq(store_list_subscriptions(test_store, list_subscription, listing), 0);
    ck_assert_str_eq(listing, "Item/all=TRUEPREDICATE;Task/ours=owner == 'me';");

    ck_assert_int_eq(store_delete_subscription(test_store, "Item", "all"), 0);
    ck_assert_int_eq(store_delete_subscription(test_store, "Item", "all"), -ENOENT);
    uint64_t version;
    ck_assert_int_eq(store_bump_subscriptions_version(test_store, &version), 0);
    ck_assert_uint_eq(version, 5);
    reopen(true);
    ck_assert_uint_eq(progress().subscriptions_version, 5);
}
END_TEST

START_TEST(test_query_results)
{
    ck_assert_int_eq(store_set_query_result(test_store, 1, true, NULL), 0);
    ck_assert_int_eq(store_set_query_result(test_store, 2, false, "field x is not queryable"), 0);
    store_sync_progress current = progress();
    ck_assert_uint_eq(current.accepted_query_version, 1);
    ck_assert_uint_eq(current.refused_query_version, 2);
    ck_assert_str_eq(current.query_error, "field x is not queryable");
    /* an old answer changes nothing */
    ck_assert_int_eq(store_set_query_result(test_store, 1, false, "old"), 0);
    ck_assert_str_eq(progress().query_error, "field x is not queryable");
    ck_assert_int_eq(store_set_query_result(test_store, 3, true, NULL), 0);
    current = progress();
    ck_assert_uint_eq(current.accepted_query_version, 3);
    ck_assert_str_eq(current.query_error, "");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Downloads                                                           */

START_TEST(test_download_creates_objects_and_reports_them)
{
    protocol_download_body download = steady_download(5, 0);
    ck_assert_int_eq(store_apply_download(test_store, &download, &(store_download_change *){ NULL },
                                          &(size_t){ 0 }), -EINVAL); /* no identity */
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    add_download_changeset(&download, 5, REMOTE_CREATE_1);
    download.query_version = 1;
    store_download_change *changes;
    size_t count;
    ck_assert_int_eq(store_apply_download(test_store, &download, &changes, &count), 0);
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(changes[0].collection, "Task");
    ck_assert_int_eq(json_integer_value(changes[0].id), 1);
    ck_assert(!changes[0].existed && changes[0].exists);
    store_free_download_changes(changes, count);
    protocol_message message = { .type = PROTOCOL_MESSAGE_DOWNLOAD, .body.download = download };
    protocol_message_clear(&message);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\"}");
    store_sync_progress current = progress();
    ck_assert_uint_eq(current.last_server_version, 5);
    ck_assert_uint_eq(current.accepted_query_version, 1);
    ck_assert_uint_eq(current.outbox_changesets, 0);

    /* a download into a collection the mount does not have creates it */
    download = steady_download(6, 0);
    add_download_changeset(&download, 6,
                           "{\"origin\": 0, \"client_version\": 0, \"timestamp\": 1, \"instructions\": ["
                           "{\"op\": \"create\", \"collection\": \"Note\", \"id\": \"n\"}]}");
    ck_assert_uint_eq(apply(&download), 1);
    ck_assert_int_eq(store_has_collection(test_store, "Note"), 1);

    /* going backwards is refused */
    download = steady_download(4, 0);
    ck_assert_int_eq(store_apply_download(test_store, &download, &changes, &count), -EINVAL);
}
END_TEST

START_TEST(test_pending_local_change_stays_on_top_until_acknowledged)
{
    protocol_download_body download = bind_with_object_1();
    ck_assert_uint_eq(progress().outbox_changesets, 0); /* a download queues nothing */

    put_document("{\"_id\": 1, \"a\": \"local\"}");
    /* another client changes a and adds b: b shows, a stays local */
    download = steady_download(2, 0);
    add_download_changeset(&download, 2,
                           "{\"origin\": 9, \"client_version\": 2, \"timestamp\": 2000, \"instructions\": ["
                           "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"a\", \"value\": \"remote\"},"
                           "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"b\", \"value\": 1}]}");
    ck_assert_uint_eq(apply(&download), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"local\", \"b\": 1}");
    ck_assert_uint_eq(progress().outbox_changesets, 1);

    /* the acknowledgement, with the merge's outcome: the server's value shows */
    download = steady_download(3, 1);
    add_download_changeset(&download, 3,
                           "{\"origin\": 1, \"client_version\": 1, \"timestamp\": 1500, \"instructions\": ["
                           "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"a\", \"value\": \"merged\"}]}");
    ck_assert_uint_eq(apply(&download), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"merged\", \"b\": 1}");
    store_sync_progress current = progress();
    ck_assert_uint_eq(current.outbox_changesets, 0);
    ck_assert_uint_eq(current.last_acknowledged_client_version, 1);
    ck_assert_uint_eq(current.last_server_version, 3);
}
END_TEST

START_TEST(test_acknowledgement_without_changes_shows_the_mirror)
{
    /* the local write lost: the server says nothing changed in the view,
     * so the acknowledgement alone brings back the server's document */
    protocol_download_body download = bind_with_object_1();
    put_document("{\"_id\": 1, \"a\": \"lost\"}");
    put_document("{\"_id\": 2, \"a\": \"new\"}");
    download = steady_download(2, 1);
    ck_assert_uint_eq(apply(&download), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\"}");
    /* object 2's create is still pending: it stays although not in view */
    assert_visible(2, "{\"_id\": 2, \"a\": \"new\"}");
    ck_assert_uint_eq(progress().outbox_changesets, 1);
    download = steady_download(3, 2);
    ck_assert_uint_eq(apply(&download), 1);
    assert_visible(2, NULL);
}
END_TEST

START_TEST(test_object_leaving_the_view_with_pending_changes_stays)
{
    protocol_download_body download = bind_with_object_1();
    put_document("{\"_id\": 1, \"a\": \"edited\"}");
    download = steady_download(2, 0);
    add_download_changeset(&download, 2,
                           "{\"origin\": 9, \"client_version\": 3, \"timestamp\": 3000, \"instructions\": ["
                           "{\"op\": \"delete\", \"collection\": \"Task\", \"id\": 1}]}");
    ck_assert_uint_eq(apply(&download), 0);
    assert_visible(1, "{\"_id\": 1, \"a\": \"edited\"}");
    download = steady_download(3, 1);
    ck_assert_uint_eq(apply(&download), 1);
    assert_visible(1, NULL);
}
END_TEST

/* A remote change of field b of Task id, from another client. */
static void add_remote_set_b(protocol_download_body *download, uint64_t server_version,
                             json_int_t id, json_int_t b)
{
    char json[400];
    snprintf(json, sizeof json,
             "{\"origin\": 9, \"client_version\": %llu, \"timestamp\": %llu, \"instructions\": ["
             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": %lld, \"path\": \"b\", "
             "\"value\": %lld}]}",
             (unsigned long long)server_version, (unsigned long long)server_version * 1000,
             (long long)id, (long long)b);
    add_download_changeset(download, server_version, json);
}

START_TEST(test_each_object_shows_its_own_pending_changes)
{
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    protocol_download_body download = steady_download(1, 0);
    add_download_changeset(&download, 1, REMOTE_CREATE_1);
    add_download_changeset(&download, 2,
                           "{\"origin\": 9, \"client_version\": 2, \"timestamp\": 1000, \"instructions\": ["
                           "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 2},"
                           "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 2, \"path\": \"a\", \"value\": \"base\"}]}");
    download.server_version = 2;
    apply(&download);

    put_document("{\"_id\": 1, \"a\": \"local\"}");            /* 1 */
    put_document("{\"_id\": 2, \"a\": \"local\"}");            /* 2 */
    put_document("{\"_id\": 1, \"a\": \"local\", \"c\": true}"); /* 3 */
    /* 4: one changeset for two objects, deleting 2 and creating 5 */
    json_t *two = json_integer(2), *five = json_integer(5);
    const char *renamed = "{\n  \"_id\": 5,\n  \"a\": \"local\"\n}\n";
    ck_assert_int_eq(store_rename_object(test_store, "Task", two, five, renamed,
                                         strlen(renamed), 1, NULL), 0);
    json_decref(two);
    json_decref(five);

    /* 1 is acknowledged; a remote change reaches 1 and 2: each keeps what
     * is still pending for it, and nothing else */
    download = steady_download(3, 1);
    add_remote_set_b(&download, 3, 1, 10);
    add_remote_set_b(&download, 4, 2, 20);
    download.server_version = 4;
    ck_assert_uint_eq(apply(&download), 1); /* 2 stays deleted by the rename */
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\", \"b\": 10, \"c\": true}");
    assert_visible(2, NULL);
    assert_visible(5, "{\"_id\": 5, \"a\": \"local\"}");
    ck_assert_uint_eq(progress().outbox_changesets, 3);

    /* the server's outcome of 2 to 4 */
    download = steady_download(5, 4);
    add_download_changeset(&download, 5,
                           "{\"origin\": 1, \"client_version\": 4, \"timestamp\": 5000, \"instructions\": ["
                           "{\"op\": \"delete\", \"collection\": \"Task\", \"id\": 2},"
                           "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 5},"
                           "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 5, \"path\": \"a\", \"value\": \"merged\"}]}");
    apply(&download);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\", \"b\": 10}");
    assert_visible(5, "{\"_id\": 5, \"a\": \"merged\"}");
    ck_assert_uint_eq(progress().outbox_changesets, 0);
}
END_TEST

/* A message of a bootstrap batch holding one server changeset. */
static protocol_download_body batch_message(bool last, const char *instructions)
{
    protocol_download_body download = steady_download(20, 0);
    download.last_in_batch = last;
    download.query_version = 2;
    char json[1024];
    snprintf(json, sizeof json,
             "{\"origin\": 0, \"client_version\": 0, \"timestamp\": 1, \"instructions\": [%s]}",
             instructions);
    add_download_changeset(&download, 20, json);
    return download;
}

START_TEST(test_batch_messages_build_on_each_other)
{
    protocol_download_body download = bind_with_object_1();
    put_document("{\"_id\": 1, \"a\": \"local\"}");

    download = batch_message(false,
                             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"b\", \"value\": 1},"
                             "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 2},"
                             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 2, \"path\": \"a\", \"value\": \"two\"}");
    ck_assert_uint_eq(apply(&download), 0);
    download = batch_message(false,
                             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"c\", \"value\": 2},"
                             "{\"op\": \"delete\", \"collection\": \"Task\", \"id\": 2},"
                             "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 3}");
    ck_assert_uint_eq(apply(&download), 0);
    assert_visible(1, "{\"_id\": 1, \"a\": \"local\"}");
    assert_visible(2, NULL);
    assert_visible(3, NULL);

    download = batch_message(true,
                             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 3, \"path\": \"a\", \"value\": \"three\"}");
    ck_assert_uint_eq(apply(&download), 2);
    assert_visible(1, "{\"_id\": 1, \"a\": \"local\", \"b\": 1, \"c\": 2}");
    assert_visible(2, NULL);
    assert_visible(3, "{\"_id\": 3, \"a\": \"three\"}");
    ck_assert_uint_eq(progress().accepted_query_version, 2);

    download = steady_download(21, 1);
    ck_assert_uint_eq(apply(&download), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\", \"b\": 1, \"c\": 2}");
}
END_TEST

/* Rewrites the closed store as format 1 had it: collection records of
 * 8 bytes (the creation time alone) and no outbox index. */
static void rewrite_as_format_1(void)
{
    MDB_env *environment;
    MDB_txn *transaction;
    MDB_dbi meta, collections, outbox_index;
    MDB_cursor *cursor;
    ck_assert_int_eq(mdb_env_create(&environment), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(environment, 16), 0);
    ck_assert_int_eq(mdb_env_open(environment, store_directory, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(environment, NULL, 0, &transaction), 0);
    ck_assert_int_eq(mdb_dbi_open(transaction, "meta", 0, &meta), 0);
    uint64_t format = 1;
    MDB_val key = { .mv_size = strlen("format"), .mv_data = "format" };
    MDB_val value = { .mv_size = sizeof format, .mv_data = &format };
    ck_assert_int_eq(mdb_put(transaction, meta, &key, &value, 0), 0);
    ck_assert_int_eq(mdb_dbi_open(transaction, "collections", 0, &collections), 0);
    ck_assert_int_eq(mdb_cursor_open(transaction, collections, &cursor), 0);
    while (mdb_cursor_get(cursor, &key, &value, MDB_NEXT) == 0) {
        int64_t created_ns;
        memcpy(&created_ns, value.mv_data, sizeof created_ns);
        MDB_val shorter = { .mv_size = sizeof created_ns, .mv_data = &created_ns };
        ck_assert_int_eq(mdb_cursor_put(cursor, &key, &shorter, MDB_CURRENT), 0);
    }
    mdb_cursor_close(cursor);
    ck_assert_int_eq(mdb_dbi_open(transaction, "outbox_index", MDB_DUPSORT | MDB_DUPFIXED,
                                  &outbox_index), 0);
    ck_assert_int_eq(mdb_drop(transaction, outbox_index, 1), 0);
    ck_assert_int_eq(mdb_txn_commit(transaction), 0);
    mdb_env_close(environment);
}

START_TEST(test_format_1_store_is_upgraded_when_opened_for_writing)
{
    protocol_download_body download = bind_with_object_1();
    put_document("{\"_id\": 1, \"a\": \"local\"}");
    store_close(test_store);
    test_store = NULL;
    rewrite_as_format_1();

    store_options read_only = { .read_only = true };
    ck_assert_int_eq(store_open(store_directory, &read_only, &test_store), -ENOTSUP);
    ck_assert_msg(strstr(store_last_error(), "format 1") != NULL, "%s", store_last_error());
    open_synced(true);
    uint64_t count = 0;
    ck_assert_int_eq(store_count_objects(test_store, "Task", &count), 0);
    ck_assert_uint_eq(count, 1);
    /* the local change stays on top of a remote one: the outbox was indexed */
    download = steady_download(2, 0);
    add_remote_set_b(&download, 2, 1, 7);
    apply(&download);
    assert_visible(1, "{\"_id\": 1, \"a\": \"local\", \"b\": 7}");
    download = steady_download(3, 1);
    apply(&download);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\", \"b\": 7}");
    reopen(true); /* upgraded once: a second open finds format 2 */
    ck_assert_int_eq(store_count_objects(test_store, "Task", &count), 0);
    ck_assert_uint_eq(count, 1);
}
END_TEST

START_TEST(test_staged_batch_is_invisible_until_its_last_message)
{
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    protocol_download_body download = steady_download(10, 0);
    download.last_in_batch = false;
    download.query_version = 1;
    add_download_changeset(&download, 10, REMOTE_CREATE_1);
    ck_assert_uint_eq(apply(&download), 0);
    assert_visible(1, NULL);
    ck_assert_uint_eq(progress().last_server_version, 0);

    /* a cut batch is discarded and sent again */
    ck_assert_int_eq(store_discard_staged_downloads(test_store), 0);
    download = steady_download(10, 0);
    download.last_in_batch = false;
    download.query_version = 1;
    add_download_changeset(&download, 10,
                           "{\"origin\": 0, \"client_version\": 0, \"timestamp\": 1, \"instructions\": ["
                           "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 2}]}");
    apply(&download);
    download = steady_download(10, 0);
    download.query_version = 1;
    add_download_changeset(&download, 10,
                           "{\"origin\": 0, \"client_version\": 0, \"timestamp\": 1, \"instructions\": ["
                           "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 3}]}");
    ck_assert_uint_eq(apply(&download), 2);
    assert_visible(1, NULL);
    assert_visible(2, "{\"_id\": 2}");
    assert_visible(3, "{\"_id\": 3}");
    store_sync_progress current = progress();
    ck_assert_uint_eq(current.last_server_version, 10);
    ck_assert_uint_eq(current.accepted_query_version, 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Client reset                                                        */

/* The change a download reported for Task id, or NULL. */
static const store_download_change *change_of(const store_download_change *changes, size_t count,
                                              json_int_t id)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(changes[i].collection, "Task") == 0 &&
            json_integer_value(changes[i].id) == id)
            return &changes[i];
    return NULL;
}

/* One new changeset per object, in no order the contract promises. */
static void assert_outbox_holds(json_t *changesets, const char *expected)
{
    bool found = false;
    for (size_t i = 0; i < json_array_size(changesets) && !found; i++) {
        char *text = instructions_of(changesets, i);
        found = strcmp(text, expected) == 0;
        free(text);
    }
    ck_assert_msg(found, "no changeset in the outbox is %s", expected);
}

/* The bootstrap of query version 1 at server_version: Task 1 {a: "one",
 * b}, Task 2 {a: "two"} and, with_three, Task 3 {a: "three"}. */
static protocol_download_body bootstrap_of_tasks(uint64_t server_version, const char *b,
                                                 bool with_three)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"origin\": 0, \"client_version\": 0, \"timestamp\": 1, \"instructions\": ["
             "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 1},"
             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"a\", \"value\": \"one\"},"
             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 1, \"path\": \"b\", \"value\": \"%s\"},"
             "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 2},"
             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 2, \"path\": \"a\", \"value\": \"two\"}%s]}",
             b, with_three ? ","
             "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 3},"
             "{\"op\": \"set\", \"collection\": \"Task\", \"id\": 3, \"path\": \"a\", \"value\": \"three\"}"
                           : "");
    protocol_download_body download = steady_download(server_version, 0);
    download.query_version = 1;
    add_download_changeset(&download, server_version, json);
    return download;
}

/* store_begin_client_reset: the number of objects it listed, each one
 * that stays as it was (only its mode changes). */
static size_t begin_client_reset(void)
{
    store_download_change *changes;
    size_t count;
    ck_assert_msg(store_begin_client_reset(test_store, &changes, &count) == 0, "%s",
                  store_last_error());
    for (size_t i = 0; i < count; i++)
        ck_assert(changes[i].existed && changes[i].exists);
    store_free_download_changes(changes, count);
    return count;
}

/* A store with identity 1 that shows Task 1, 2 and 3 from the server,
 * subscribed to all Tasks (query version 1, accepted). */
static void synced_with_three_tasks(void)
{
    ck_assert_int_eq(store_set_file_identity(test_store, 1), 0);
    ck_assert_int_eq(store_put_subscription(test_store, "Task", "all", "TRUEPREDICATE"), 0);
    protocol_download_body download = bootstrap_of_tasks(3, "old", true);
    ck_assert_uint_eq(apply(&download), 3);
    ck_assert_uint_eq(progress().accepted_query_version, 1);
}

START_TEST(test_client_reset_forgets_the_file_and_sets_the_outbox_aside)
{
    synced_with_three_tasks();
    put_document("{\"_id\": 1, \"a\": \"local\", \"b\": \"old\"}");
    ck_assert_uint_eq(begin_client_reset(), 0);
    store_sync_progress current = progress();
    ck_assert(current.client_reset_pending);
    ck_assert_uint_eq(current.file_identity, 0);
    ck_assert_uint_eq(current.last_server_version, 0);
    ck_assert_uint_eq(current.last_acknowledged_client_version, 0);
    ck_assert_uint_eq(current.accepted_query_version, 0);
    ck_assert_uint_eq(current.subscriptions_version, 1);
    ck_assert_uint_eq(current.outbox_changesets, 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"local\", \"b\": \"old\"}");
    assert_visible(2, "{\"_id\": 2, \"a\": \"two\"}");

    /* the new file: nothing goes up until the bootstrap of the set */
    ck_assert_int_eq(store_set_file_identity(test_store, 2), 0);
    ck_assert_int_eq(store_scan_outbox(test_store, 0, 0, wall_clock_ms(), collect_changeset,
                                       NULL), -EAGAIN);
    protocol_download_body download = steady_download(1, 0);
    apply(&download);
    ck_assert(progress().client_reset_pending);

    /* a second reset before the first completed keeps what was set aside */
    ck_assert_uint_eq(begin_client_reset(), 0);
    ck_assert_uint_eq(progress().outbox_changesets, 1);
    reopen(true);
    ck_assert(progress().client_reset_pending);
}
END_TEST

START_TEST(test_client_reset_reapplies_local_changes_on_the_fresh_documents)
{
    synced_with_three_tasks();
    put_document("{\"_id\": 1, \"a\": \"local\", \"b\": \"old\"}");
    put_document("{\"_id\": 3, \"a\": \"three, edited\"}");
    put_document("{\"_id\": 4, \"a\": \"new\"}");
    json_t *two = json_integer(2);
    ck_assert_int_eq(store_delete_object(test_store, "Task", two), 0);
    json_decref(two);
    ck_assert_uint_eq(begin_client_reset(), 0);
    ck_assert_int_eq(store_set_file_identity(test_store, 2), 0);
    /* written during the reset: set aside with the rest */
    put_document("{\"_id\": 4, \"a\": \"new\", \"c\": true}");

    /* the fresh bootstrap: b changed on the server, 3 is gone */
    protocol_download_body download = bootstrap_of_tasks(7, "newer", false);
    store_download_change *changes;
    size_t count;
    ck_assert_msg(store_apply_download(test_store, &download, &changes, &count) == 0, "%s",
                  store_last_error());
    const store_download_change *lost = change_of(changes, count, 3);
    ck_assert_ptr_nonnull(lost);
    ck_assert(lost->existed && !lost->exists);
    ck_assert_ptr_nonnull(strstr(lost->lost_text, "three, edited"));
    const store_download_change *updated = change_of(changes, count, 1);
    ck_assert_ptr_nonnull(updated);
    ck_assert_ptr_null(updated->lost_text);
    store_free_download_changes(changes, count);
    protocol_message message = { .type = PROTOCOL_MESSAGE_DOWNLOAD, .body.download = download };
    protocol_message_clear(&message);

    assert_visible(1, "{\"_id\": 1, \"a\": \"local\", \"b\": \"newer\"}");
    assert_visible(2, NULL);
    assert_visible(3, NULL);
    assert_visible(4, "{\"_id\": 4, \"a\": \"new\", \"c\": true}");
    store_sync_progress current = progress();
    ck_assert(!current.client_reset_pending);
    ck_assert_uint_eq(current.accepted_query_version, 1);
    ck_assert_uint_eq(current.last_server_version, 7);
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 3);
    assert_outbox_holds(outbox,
                        "[{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"a\",\"value\":\"local\"}]");
    assert_outbox_holds(outbox, "[{\"op\":\"delete\",\"collection\":\"Task\",\"id\":2}]");
    assert_outbox_holds(outbox,
                        "[{\"op\":\"create\",\"collection\":\"Task\",\"id\":4},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":4,\"path\":\"a\",\"value\":\"new\"},"
                        "{\"op\":\"set\",\"collection\":\"Task\",\"id\":4,\"path\":\"c\",\"value\":true}]");
    json_t *first = json_array_get(outbox, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "origin")), 2);
    /* client versions go on from the set-aside ones */
    ck_assert_int_ge(json_integer_value(json_object_get(first, "client_version")), 6);
    json_decref(outbox);
}
END_TEST

START_TEST(test_client_reset_loses_new_objects_of_unsubscribed_collections)
{
    synced_with_three_tasks();
    ck_assert_int_eq(store_create_collection(test_store, "Note"), 0);
    json_t *id = json_integer(1);
    const char *text = "{\n  \"_id\": 1,\n  \"text\": \"unsynced note\"\n}\n";
    ck_assert_int_eq(store_put_object(test_store, "Note", id, text, strlen(text), 1, NULL), 0);
    ck_assert_uint_eq(begin_client_reset(), 0);
    ck_assert_int_eq(store_set_file_identity(test_store, 2), 0);
    protocol_download_body download = steady_download(1, 0);
    download.query_version = 1;
    store_download_change *changes;
    size_t count;
    ck_assert_int_eq(store_apply_download(test_store, &download, &changes, &count), 0);
    /* the empty bootstrap: the Tasks leave, the note is lost */
    ck_assert_uint_eq(count, 4);
    bool note_lost = false;
    for (size_t i = 0; i < count; i++)
        if (strcmp(changes[i].collection, "Note") == 0)
            note_lost = changes[i].lost_text != NULL &&
                        strstr(changes[i].lost_text, "unsynced note") != NULL;
    ck_assert(note_lost);
    store_free_download_changes(changes, count);
    ck_assert_int_eq(store_get_object(test_store, "Note", id, NULL, NULL), -ENOENT);
    assert_visible(1, NULL);
    ck_assert_uint_eq(progress().outbox_changesets, 0);
    json_decref(id);
}
END_TEST

START_TEST(test_client_reset_without_subscriptions_sends_the_empty_set)
{
    put_document("{\"_id\": 1, \"a\": 1}");
    ck_assert_uint_eq(begin_client_reset(), 0);
    ck_assert_uint_eq(progress().subscriptions_version, 1);
    ck_assert_int_eq(store_set_file_identity(test_store, 2), 0);
    protocol_download_body download = steady_download(1, 0);
    download.query_version = 1;
    apply(&download);
    ck_assert(!progress().client_reset_pending);
    /* a collection without a subscription: the new object cannot go up */
    assert_visible(1, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Roles and rules: access, refused writes, the server's schemas        */

static void add_access(protocol_download_body *download, json_int_t id, bool writable)
{
    json_t *key = json_integer(id);
    ck_assert_int_eq(protocol_download_add_access(download, "Task", key, writable), 0);
    json_decref(key);
}

static int read_only(json_int_t id)
{
    json_t *key = json_integer(id);
    int result = store_object_is_read_only(test_store, "Task", key);
    json_decref(key);
    ck_assert_msg(result >= 0, "%s", store_last_error());
    return result;
}

START_TEST(test_access_entries_mark_objects_read_only)
{
    protocol_download_body download = bind_with_object_1();
    download.server_version = 2;
    add_access(&download, 1, false);
    /* the object shows no new text, but its mode changes */
    ck_assert_uint_eq(apply(&download), 1);
    ck_assert_int_eq(read_only(1), 1);
    ck_assert_uint_eq(progress().read_only_objects, 1);
    download = steady_download(3, 0);
    add_access(&download, 1, false);
    add_access(&download, 7, true); /* writable already */
    ck_assert_uint_eq(apply(&download), 0);
    reopen(true);
    ck_assert_int_eq(read_only(1), 1);

    /* entries apply after the changesets: a deleted and created object
     * comes back writable unless an entry says otherwise */
    download = steady_download(4, 0);
    add_download_changeset(&download, 4,
                           "{\"origin\": 9, \"client_version\": 2, \"timestamp\": 2000, \"instructions\": ["
                           "{\"op\": \"delete\", \"collection\": \"Task\", \"id\": 1},"
                           "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 1},"
                           "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 2}]}");
    add_access(&download, 2, false);
    apply(&download);
    ck_assert_int_eq(read_only(1), 0);
    ck_assert_int_eq(read_only(2), 1);

    /* an object staged by a batch is read-only before it shows; one that
     * leaves the view is writable when it comes back, and at once (it
     * still shows until the batch completes: its mode changed) */
    download = batch_message(false,
                             "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 3},"
                             "{\"op\": \"delete\", \"collection\": \"Task\", \"id\": 2}");
    add_access(&download, 3, false);
    ck_assert_uint_eq(apply(&download), 1);
    ck_assert_int_eq(read_only(3), 1);
    ck_assert_int_eq(read_only(2), 0);
    download = batch_message(true, "{\"op\": \"create\", \"collection\": \"Task\", \"id\": 4}");
    add_access(&download, 3, true);
    add_access(&download, 4, false);
    apply(&download);
    ck_assert_int_eq(read_only(3), 0);
    ck_assert_int_eq(read_only(4), 1);

    /* a client reset forgets them all; the one that shows (Task 4) is
     * listed, for its mode */
    ck_assert_uint_eq(begin_client_reset(), 1);
    ck_assert_uint_eq(progress().read_only_objects, 0);
}
END_TEST

/* store_revert_refused_write of Task id up to client_version: the text the
 * object had must hold expected_part (NULL: the object was not visible).
 * The number of changes it reported. */
static size_t revert(json_int_t id, uint64_t client_version, const char *expected_part)
{
    json_t *key = json_integer(id);
    char *rejected;
    store_download_change *changes;
    size_t count;
    int result = store_revert_refused_write(test_store, "Task", key, client_version, &rejected,
                                            &changes, &count);
    ck_assert_msg(result == 0, "revert: %s", store_last_error());
    if (expected_part == NULL)
        ck_assert_ptr_null(rejected);
    else
        ck_assert_msg(rejected != NULL && strstr(rejected, expected_part) != NULL,
                      "rejected text: %s", rejected);
    for (size_t i = 0; i < count; i++)
        ck_assert_int_eq(json_integer_value(changes[i].id), id);
    store_free_download_changes(changes, count);
    free(rejected);
    json_decref(key);
    return count;
}

START_TEST(test_refused_write_leaves_the_outbox_and_the_object_reverts)
{
    bind_with_object_1();
    put_document("{\"_id\": 1, \"a\": \"refused\"}");
    put_document("{\"_id\": 1, \"a\": \"refused\", \"b\": 2}");
    ck_assert_uint_eq(revert(1, 1, "refused"), 1);
    /* the later change stays on the server's version */
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\", \"b\": 2}");
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 1);
    assert_instructions(outbox, 0,
                        "[{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"b\",\"value\":2}]");
    json_decref(outbox);
    ck_assert_uint_eq(progress().rejected_writes, 1);

    /* everything refused: the server's version alone */
    ck_assert_uint_eq(revert(1, 2, "\"b\": 2"), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\"}");
    ck_assert_uint_eq(progress().outbox_changesets, 0);
    ck_assert_uint_eq(progress().rejected_writes, 2);
}
END_TEST

START_TEST(test_refused_write_sent_again_is_handled_once)
{
    bind_with_object_1();
    put_document("{\"_id\": 1, \"a\": \"refused\"}");
    ck_assert_uint_eq(revert(1, 1, "refused"), 1);
    put_document("{\"_id\": 1, \"a\": \"later\"}");
    /* the same error again (a reconnection): the later change stays */
    json_t *key = json_integer(1);
    char *rejected;
    store_download_change *changes;
    size_t count;
    ck_assert_int_eq(store_revert_refused_write(test_store, "Task", key, 1, &rejected, &changes,
                                                &count),
                     1);
    ck_assert_ptr_null(rejected);
    ck_assert_uint_eq(count, 0);
    assert_visible(1, "{\"_id\": 1, \"a\": \"later\"}");
    ck_assert_uint_eq(progress().outbox_changesets, 1);
    ck_assert_uint_eq(progress().rejected_writes, 1);
    /* a later refusal of the object is a new one */
    ck_assert_uint_eq(revert(1, 2, "later"), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\"}");
    ck_assert_uint_eq(progress().rejected_writes, 2);
    json_decref(key);
}
END_TEST

START_TEST(test_refused_write_keeps_the_changesets_other_objects)
{
    bind_with_object_1();
    json_t *one = json_integer(1), *five = json_integer(5);
    const char *text = "{\n  \"_id\": 5,\n  \"a\": \"base\"\n}\n";
    ck_assert_int_eq(store_rename_object(test_store, "Task", one, five, text, strlen(text), 1,
                                         NULL), 0);
    /* the server refused creating 5, and deleted 1 */
    ck_assert_uint_eq(revert(5, 1, "\"_id\": 5"), 1);
    assert_visible(5, NULL);
    assert_visible(1, NULL);
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 1);
    assert_instructions(outbox, 0, "[{\"op\":\"delete\",\"collection\":\"Task\",\"id\":1}]");
    json_decref(outbox);
    json_decref(one);
    json_decref(five);
}
END_TEST

START_TEST(test_refused_delete_brings_the_object_back)
{
    bind_with_object_1();
    json_t *one = json_integer(1);
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", one), 0);
    ck_assert_uint_eq(revert(1, 1, NULL), 1);
    assert_visible(1, "{\"_id\": 1, \"a\": \"base\"}");
    ck_assert_uint_eq(progress().outbox_changesets, 0);
    /* the held delete left with its changeset: the next delete and
     * creation merge by themselves */
    ck_assert_int_eq(store_delete_object_held(test_store, "Task", one), 0);
    put_document("{\"_id\": 1, \"a\": \"again\"}");
    json_t *outbox = outbox_at(wall_clock_ms());
    ck_assert_uint_eq(json_array_size(outbox), 1);
    assert_instructions(outbox, 0,
                        "[{\"op\":\"set\",\"collection\":\"Task\",\"id\":1,\"path\":\"a\",\"value\":\"again\"}]");
    json_decref(outbox);
    json_decref(one);
}
END_TEST

static char *schema_of(const char *collection)
{
    char *text = NULL;
    int result = store_get_schema(test_store, collection, &text, NULL);
    return result == 0 ? text : NULL;
}

START_TEST(test_server_schemas_replace_the_stores)
{
    ck_assert_int_eq(store_put_schema(test_store, "Task", "{}", 2), 0);
    ck_assert(!progress().server_schemas);
    json_t *schemas = json_pack("{s:{s:s, s:{s:{s:s}}}}", "Item", "bsonType", "object",
                                "properties", "name", "bsonType", "string");
    ck_assert_int_eq(store_set_server_schemas(test_store, schemas, false), 0);
    ck_assert_ptr_null(schema_of("Task"));
    char *item = schema_of("Item");
    ck_assert_str_eq(item, "{\n  \"bsonType\": \"object\",\n  \"properties\": {\n    \"name\": {\n"
                           "      \"bsonType\": \"string\"\n    }\n  }\n}\n");
    free(item);
    store_sync_progress current = progress();
    ck_assert(current.server_schemas && !current.development_mode);
    ck_assert_int_eq(store_set_server_schemas(test_store, schemas, true), 0);
    ck_assert(progress().development_mode);
    json_decref(schemas);

    schemas = json_pack("{s:{}}", "");
    ck_assert_int_eq(store_set_server_schemas(test_store, schemas, false), -EINVAL);
    json_decref(schemas);
    ck_assert_int_eq(store_set_server_schemas(test_store, json_null(), false), -EINVAL);
    /* a refused call changed nothing */
    item = schema_of("Item");
    ck_assert_ptr_nonnull(item);
    free(item);
    ck_assert(progress().development_mode);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("store_sync");
    TCase *outbox = tcase_create("outbox");
    tcase_add_checked_fixture(outbox, setup, teardown);
    tcase_add_test(outbox, test_put_queues_diff_and_noop_queues_nothing);
    tcase_add_test(outbox, test_rename_queues_delete_and_create);
    tcase_add_test(outbox, test_held_delete_and_create_merge_into_one_update);
    tcase_add_test(outbox, test_held_delete_merges_only_while_newest_for_its_object);
    tcase_add_test(outbox, test_unsynced_store_has_no_sync_state);
    tcase_add_test(outbox, test_existing_objects_are_queued_when_a_store_becomes_synced);
    tcase_add_test(outbox, test_outbox_entry_survives_a_crash_after_the_put);
    suite_add_tcase(suite, outbox);
    TCase *subscriptions = tcase_create("subscriptions");
    tcase_add_checked_fixture(subscriptions, setup, teardown);
    tcase_add_test(subscriptions, test_subscriptions);
    tcase_add_test(subscriptions, test_query_results);
    suite_add_tcase(suite, subscriptions);
    TCase *downloads = tcase_create("downloads");
    tcase_add_checked_fixture(downloads, setup, teardown);
    tcase_add_test(downloads, test_download_creates_objects_and_reports_them);
    tcase_add_test(downloads, test_pending_local_change_stays_on_top_until_acknowledged);
    tcase_add_test(downloads, test_acknowledgement_without_changes_shows_the_mirror);
    tcase_add_test(downloads, test_object_leaving_the_view_with_pending_changes_stays);
    tcase_add_test(downloads, test_staged_batch_is_invisible_until_its_last_message);
    tcase_add_test(downloads, test_each_object_shows_its_own_pending_changes);
    tcase_add_test(downloads, test_batch_messages_build_on_each_other);
    tcase_add_test(downloads, test_format_1_store_is_upgraded_when_opened_for_writing);
    suite_add_tcase(suite, downloads);
    TCase *client_reset = tcase_create("client_reset");
    tcase_add_checked_fixture(client_reset, setup, teardown);
    tcase_add_test(client_reset, test_client_reset_forgets_the_file_and_sets_the_outbox_aside);
    tcase_add_test(client_reset, test_client_reset_reapplies_local_changes_on_the_fresh_documents);
    tcase_add_test(client_reset, test_client_reset_loses_new_objects_of_unsubscribed_collections);
    tcase_add_test(client_reset, test_client_reset_without_subscriptions_sends_the_empty_set);
    suite_add_tcase(suite, client_reset);
    TCase *rules = tcase_create("rules");
    tcase_add_checked_fixture(rules, setup, teardown);
    tcase_add_test(rules, test_access_entries_mark_objects_read_only);
    tcase_add_test(rules, test_refused_write_leaves_the_outbox_and_the_object_reverts);
    tcase_add_test(rules, test_refused_write_sent_again_is_handled_once);
    tcase_add_test(rules, test_refused_write_keeps_the_changesets_other_objects);
    tcase_add_test(rules, test_refused_delete_brings_the_object_back);
    tcase_add_test(rules, test_server_schemas_replace_the_stores);
    suite_add_tcase(suite, rules);
    return suite;
}

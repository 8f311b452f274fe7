/*
 * Unit tests of the sync server's store (sync_store.h) on a real LMDB
 * store in a temporary data directory.
 */
#include "realmfs/changeset.h"
#include "realmfs/ejson.h"
#include "realmfs/sync_store.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char data_directory[PATH_MAX];
static sync_store *test_store;

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */

static int remove_entry(const char *path, const struct stat *status, int type, struct FTW *walk)
{
    (void)status;
    (void)type;
    (void)walk;
    return remove(path);
}

/* The data directory does not exist yet, so that every test also
 * exercises its creation. */
static void open_test_store(void)
{
    char base[] = "/tmp/realmfs-test-sync-store-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(data_directory, sizeof data_directory, "%s/data", base);
    ck_assert_msg(sync_store_open(data_directory, 0, &test_store) == 0, "%s",
                  sync_store_last_error());
}

static void close_test_store(void)
{
    sync_store_close(test_store);
    test_store = NULL;
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s", data_directory);
    *strrchr(base, '/') = '\0';
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void reopen_test_store(void)
{
    sync_store_close(test_store);
    test_store = NULL;
    ck_assert_int_eq(sync_store_open(data_directory, 0, &test_store), 0);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* A normalized value from its Relaxed Extended JSON text. */
static json_t *value_of(const char *text)
{
    char wrapped[1024];
    snprintf(wrapped, sizeof wrapped, "{\"v\": %s}", text);
    ejson_error error;
    json_t *document = ejson_parse(wrapped, strlen(wrapped), &error);
    ck_assert_msg(document != NULL, "%s: %s", text, error.message);
    json_t *value = json_incref(json_object_get(document, "v"));
    json_decref(document);
    return value;
}

static void start_changeset(changeset *changeset, uint64_t origin, uint64_t client_version,
                            int64_t timestamp)
{
    *changeset = (struct changeset){ .origin = origin, .client_version = client_version,
                                     .timestamp = timestamp };
}

/* id and value are Extended JSON texts; path and value may be NULL. */
static void add(changeset *changeset, changeset_operation operation, const char *collection,
                const char *id, const char *path, const char *value)
{
    json_t *id_value = value_of(id);
    json_t *value_value = value != NULL ? value_of(value) : NULL;
    char message[256];
    ck_assert_msg(changeset_append(changeset, operation, collection, id_value, path, value_value,
                                   message, sizeof message) == 0,
                  "%s", message);
    json_decref(id_value);
    json_decref(value_value);
}

/* A changeset by the server that makes document (EJSON text) exist. */
static void add_document(changeset *changeset, const char *collection, const char *document)
{
    ejson_error error;
    json_t *parsed = ejson_parse(document, strlen(document), &error);
    ck_assert_msg(parsed != NULL, "%s", error.message);
    char message[256];
    ck_assert_msg(changeset_diff(collection, json_object_get(parsed, "_id"), NULL, parsed,
                                 changeset, message, sizeof message) == 0,
                  "%s", message);
    json_decref(parsed);
}

static void integrate_ok(changeset *changesets, size_t count, int64_t now_ms,
                         sync_store_integration *results)
{
    ck_assert_msg(sync_store_integrate(test_store, changesets, count, now_ms, results) == 0, "%s",
                  sync_store_last_error());
}

/* Integrates one changeset, clears it and returns its server version. */
static uint64_t integrate_single(changeset *changeset, int64_t now_ms)
{
    sync_store_integration result;
    integrate_ok(changeset, 1, now_ms, &result);
    uint64_t version = result.server_version;
    sync_store_integration_clear(&result);
    changeset_clear(changeset);
    return version;
}

static char *format_or_null(const json_t *document)
{
    if (document == NULL)
        return NULL;
    size_t length;
    char *text = ejson_format_line(document, &length);
    ck_assert_ptr_nonnull(text);
    return text;
}

/* The document's one-line text, or NULL when the object does not exist;
 * in the latest state, or as snapshot shows it when not NULL. */
static char *document_text_in(sync_store_snapshot *snapshot, const char *collection,
                              const char *id)
{
    json_t *id_value = value_of(id);
    json_t *document = NULL;
    int result = snapshot != NULL
                     ? sync_store_snapshot_get_document(snapshot, collection, id_value, &document)
                     : sync_store_get_document(test_store, collection, id_value, &document);
    json_decref(id_value);
    if (result == -ENOENT)
        return NULL;
    ck_assert_msg(result == 0, "%s", sync_store_last_error());
    char *text = format_or_null(document);
    json_decref(document);
    return text;
}

static char *document_text(const char *collection, const char *id)
{
    return document_text_in(NULL, collection, id);
}

static void assert_document(const char *collection, const char *id, const char *expected)
{
    char *text = document_text(collection, id);
    if (expected == NULL)
        ck_assert_msg(text == NULL, "%s %s exists: %s", collection, id, text);
    else
        ck_assert_msg(text != NULL && strcmp(text, expected) == 0, "%s %s: %s, not %s",
                      collection, id, text, expected);
    free(text);
}

static void assert_change(const sync_store_object_change *change, const char *collection,
                          const char *old_text, const char *new_text)
{
    ck_assert_str_eq(change->collection, collection);
    char *old_document = format_or_null(change->old_document);
    char *new_document = format_or_null(change->new_document);
    if (old_text == NULL)
        ck_assert_ptr_null(old_document);
    else
        ck_assert_str_eq(old_document, old_text);
    if (new_text == NULL)
        ck_assert_ptr_null(new_document);
    else
        ck_assert_str_eq(new_document, new_text);
    free(old_document);
    free(new_document);
}

static sync_store_statistics statistics_now(void)
{
    sync_store_statistics statistics;
    ck_assert_int_eq(sync_store_get_statistics(test_store, &statistics), 0);
    return statistics;
}

static uint64_t new_file(const char *user)
{
    uint64_t identity = 0;
    ck_assert_int_eq(sync_store_create_file(test_store, user, 1000, &identity), 0);
    return identity;
}

/* Every document of a collection, one line each, as a snapshot scan sees
 * them: what a bootstrap would send. */
typedef struct collected_text {
    char *text;
    size_t length;
    size_t count;
} collected_text;

static int collect_document(const sync_store_document_view *document, void *context)
{
    collected_text *collected = context;
    char *id = format_or_null(document->id);
    size_t added = strlen(id) + document->size + 3;
    collected->text = realloc(collected->text, collected->length + added + 1);
    ck_assert_ptr_nonnull(collected->text);
    collected->length += (size_t)sprintf(collected->text + collected->length, "%s %.*s\n", id,
                                         (int)document->size, document->text);
    collected->count++;
    free(id);
    return 0;
}

static char *scan_text(sync_store_snapshot *snapshot, const char *collection, const char *after)
{
    collected_text collected = { .text = strdup("") };
    json_t *after_id = after != NULL ? value_of(after) : NULL;
    ck_assert_msg(sync_store_snapshot_scan(snapshot, collection, after_id, collect_document,
                                           &collected) == 0,
                  "%s", sync_store_last_error());
    json_decref(after_id);
    return collected.text;
}

static char *scan_all(const char *collection)
{
    sync_store_snapshot *snapshot;
    ck_assert_int_eq(sync_store_snapshot_begin(test_store, &snapshot), 0);
    char *text = scan_text(snapshot, collection, NULL);
    sync_store_snapshot_end(snapshot);
    return text;
}

/* ------------------------------------------------------------------ */
/* Opening and files                                                   */

START_TEST(test_new_store_is_empty)
{
    sync_store_statistics statistics = statistics_now();
    ck_assert_uint_eq(statistics.server_version, 0);
    ck_assert_uint_eq(statistics.oldest_history, 1);
    ck_assert_uint_eq(statistics.history_changesets, 0);
    ck_assert_uint_eq(statistics.objects, 0);
    ck_assert_uint_eq(statistics.files, 0);
    ck_assert_uint_gt(statistics.file_bytes, 0);
    struct stat status;
    char sync_directory[PATH_MAX + sizeof "/sync"];
    snprintf(sync_directory, sizeof sync_directory, "%s/sync", data_directory);
    ck_assert_int_eq(stat(sync_directory, &status), 0);
    ck_assert_int_eq(status.st_mode & 0777, 0700);
    ck_assert_int_eq(sync_store_sync(test_store), 0);
}
END_TEST

START_TEST(test_open_errors)
{
    sync_store *other = NULL;
    ck_assert_int_eq(sync_store_open("", 0, &other), -EINVAL);
    ck_assert_ptr_null(other);
    ck_assert_str_ne(sync_store_last_error(), "");
    ck_assert_int_eq(sync_store_open("/proc/realmfs-cannot-be-here", 0, &other) < 0, 1);
    ck_assert_ptr_null(other);
    ck_assert_ptr_nonnull(strstr(sync_store_last_error(), "/proc/realmfs-cannot-be-here"));
}
END_TEST

START_TEST(test_files)
{
    ck_assert_uint_eq(new_file("user-a"), 1);
    ck_assert_uint_eq(new_file("user-b"), 2);
    ck_assert_uint_eq(statistics_now().files, 2);

    sync_store_file file = { 0 };
    ck_assert_int_eq(sync_store_get_file(test_store, 2, &file), 0);
    ck_assert_uint_eq(file.identity, 2);
    ck_assert_str_eq(file.user_id, "user-b");
    ck_assert_uint_eq(file.last_integrated_client_version, 0);
    ck_assert_uint_eq(file.query_version, 0);
    ck_assert_int_eq(json_object_size(file.subscriptions), 0);
    ck_assert_int_eq(file.last_seen_ms, 1000);
    sync_store_file_clear(&file);

    json_t *subscriptions = json_pack("{s:[{s:s, s:s}]}", "Task", "name", "mine", "query",
                                      "owner == 'a'");
    ck_assert_int_eq(sync_store_set_file_query(test_store, 2, 3, subscriptions), 0);
    ck_assert_int_eq(sync_store_touch_file(test_store, 2, 5000), 0);
    reopen_test_store();
    ck_assert_int_eq(sync_store_get_file(test_store, 2, &file), 0);
    ck_assert_uint_eq(file.query_version, 3);
    ck_assert(json_equal(file.subscriptions, subscriptions));
    ck_assert_int_eq(file.last_seen_ms, 5000);
    sync_store_file_clear(&file);
    sync_store_file_clear(&file);

    ck_assert_int_eq(sync_store_get_file(test_store, 3, &file), -ENOENT);
    ck_assert_ptr_nonnull(strstr(sync_store_last_error(), "3"));
    ck_assert_int_eq(sync_store_get_file(test_store, 0, &file), -ENOENT);
    ck_assert_int_eq(sync_store_set_file_query(test_store, 7, 1, subscriptions), -ENOENT);
    ck_assert_int_eq(sync_store_touch_file(test_store, 7, 1), -ENOENT);
    json_t *not_an_object = json_array();
    ck_assert_int_eq(sync_store_set_file_query(test_store, 2, 4, not_an_object), -EINVAL);
    json_decref(not_an_object);
    json_decref(subscriptions);
    /* Identities are never reused, across reopening too. */
    ck_assert_uint_eq(new_file("user-a"), 3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Integration                                                         */

START_TEST(test_integrate_reports_changes)
{
    changeset changesets[2];
    start_changeset(&changesets[0], 0, 0, 1000);
    add_document(&changesets[0], "Task", "{\"_id\": 1, \"title\": \"a\", \"done\": false}");
    add_document(&changesets[0], "Task", "{\"_id\": 2, \"title\": \"b\"}");
    start_changeset(&changesets[1], 0, 0, 2000);
    add(&changesets[1], CHANGESET_SET, "Task", "2", "title", "\"B\"");
    add(&changesets[1], CHANGESET_SET, "Task", "1", "done", "true");
    add(&changesets[1], CHANGESET_SET, "Task", "2", "tags.first", "\"x\"");
    add(&changesets[1], CHANGESET_SET, "Task", "3", "orphan", "1");
    sync_store_integration results[2];
    integrate_ok(changesets, 2, 5000, results);

    ck_assert(!results[0].skipped);
    ck_assert_uint_eq(results[0].server_version, 1);
    ck_assert_uint_eq(results[0].change_count, 2);
    assert_change(&results[0].changes[0], "Task", NULL,
                  "{\"_id\": 1, \"title\": \"a\", \"done\": false}");
    ck_assert_int_eq(json_integer_value(results[0].changes[0].id), 1);
    assert_change(&results[0].changes[1], "Task", NULL, "{\"_id\": 2, \"title\": \"b\"}");

    /* In order of first touch; a set on an object that does not exist
     * changes no document. */
    ck_assert_uint_eq(results[1].server_version, 2);
    ck_assert_uint_eq(results[1].change_count, 2);
    assert_change(&results[1].changes[0], "Task", "{\"_id\": 2, \"title\": \"b\"}",
                  "{\"_id\": 2, \"title\": \"B\", \"tags\": {\"first\": \"x\"}}");
    ck_assert_int_eq(json_integer_value(results[1].changes[0].id), 2);
    assert_change(&results[1].changes[1], "Task", "{\"_id\": 1, \"title\": \"a\", \"done\": false}",
                  "{\"_id\": 1, \"title\": \"a\", \"done\": true}");
    for (size_t index = 0; index < 2; index++) {
        sync_store_integration_clear(&results[index]);
        changeset_clear(&changesets[index]);
    }

    assert_document("Task", "2", "{\"_id\": 2, \"title\": \"B\", \"tags\": {\"first\": \"x\"}}");
    assert_document("Task", "3", NULL);
    sync_store_statistics statistics = statistics_now();
    ck_assert_uint_eq(statistics.server_version, 2);
    ck_assert_uint_eq(statistics.history_changesets, 2);
    ck_assert_uint_eq(statistics.objects, 2);

    /* A delete reports the old document and no new one. */
    start_changeset(&changesets[0], 0, 0, 3000);
    add(&changesets[0], CHANGESET_DELETE, "Task", "1", NULL, NULL);
    integrate_ok(changesets, 1, 6000, results);
    ck_assert_uint_eq(results[0].change_count, 1);
    assert_change(&results[0].changes[0], "Task", "{\"_id\": 1, \"title\": \"a\", \"done\": true}",
                  NULL);
    sync_store_integration_clear(&results[0]);
    changeset_clear(&changesets[0]);
    assert_document("Task", "1", NULL);
    ck_assert_uint_eq(statistics_now().objects, 1);
}
END_TEST

/* The merge state an object has, to apply instructions to it without
 * integrating them: the same document as the store's, and an empty state
 * for an object never written. */
START_TEST(test_object_state_is_the_stored_one)
{
    changeset written;
    start_changeset(&written, 0, 0, 1000);
    add_document(&written, "Task", "{\"_id\": 1, \"title\": \"a\"}");
    integrate_single(&written, 5000);
    json_t *id = value_of("1");
    object_state *state = NULL;
    ck_assert_int_eq(sync_store_get_object_state(test_store, "Task", id, &state), 0);
    json_t *document = NULL;
    ck_assert_int_eq(object_state_document(state, &document), 0);
    char *text = format_or_null(document);
    ck_assert_str_eq(text, "{\"_id\": 1, \"title\": \"a\"}");
    free(text);
    json_decref(document);
    object_state_free(state);

    ck_assert_int_eq(sync_store_get_object_state(test_store, "Other", id, &state), 0);
    ck_assert_int_eq(object_state_document(state, &document), 0);
    ck_assert_ptr_null(document);
    object_state_free(state);
    ck_assert_int_eq(sync_store_get_object_state(test_store, "", id, &state), -EINVAL);
    ck_assert_ptr_null(state);
    json_decref(id);
}
END_TEST

START_TEST(test_reintegration_is_idempotent)
{
    changeset server_made;
    start_changeset(&server_made, 0, 0, 1000);
    add_document(&server_made, "Task", "{\"_id\": \"a\", \"n\": 1}");
    sync_store_integration result;
    integrate_ok(&server_made, 1, 1000, &result);
    ck_assert_uint_eq(result.change_count, 1);
    sync_store_integration_clear(&result);
    /* The server's own changesets are never skipped, but the same
     * instructions change nothing the second time. */
    integrate_ok(&server_made, 1, 1000, &result);
    ck_assert(!result.skipped);
    ck_assert_uint_eq(result.server_version, 2);
    ck_assert_uint_eq(result.change_count, 0);
    sync_store_integration_clear(&result);
    changeset_clear(&server_made);

    uint64_t file = new_file("u");
    changeset uploads[3];
    for (uint64_t version = 1; version <= 3; version++) {
        start_changeset(&uploads[version - 1], file, version, 2000 + (int64_t)version);
        add(&uploads[version - 1], CHANGESET_SET, "Task", "\"a\"", "n", version == 2 ? "20" : "10");
    }
    sync_store_integration results[3];
    integrate_ok(uploads, 2, 3000, results);
    ck_assert_uint_eq(results[0].server_version, 3);
    ck_assert_uint_eq(results[1].server_version, 4);
    sync_store_integration_clear(&results[0]);
    sync_store_integration_clear(&results[1]);
    assert_document("Task", "\"a\"", "{\"_id\": \"a\", \"n\": 20}");

    /* A reconnected client uploads 1..3 again: 1 and 2 are skipped. */
    integrate_ok(uploads, 3, 4000, results);
    ck_assert(results[0].skipped && results[1].skipped && !results[2].skipped);
    ck_assert_uint_eq(results[0].server_version, 0);
    ck_assert_uint_eq(results[0].change_count, 0);
    ck_assert_uint_eq(results[2].server_version, 5);
    assert_change(&results[2].changes[0], "Task", "{\"_id\": \"a\", \"n\": 20}",
                  "{\"_id\": \"a\", \"n\": 10}");
    for (size_t index = 0; index < 3; index++) {
        sync_store_integration_clear(&results[index]);
        changeset_clear(&uploads[index]);
    }
    /* The same changeset twice in one array: the second is skipped. */
    start_changeset(&uploads[0], file, 4, 5000);
    add(&uploads[0], CHANGESET_SET, "Task", "\"a\"", "n", "4");
    uploads[1] = uploads[0];
    integrate_ok(uploads, 2, 5000, results);
    ck_assert(!results[0].skipped && results[1].skipped);
    sync_store_integration_clear(&results[0]);
    sync_store_integration_clear(&results[1]);
    changeset_clear(&uploads[0]);

    sync_store_file stored = { 0 };
    ck_assert_int_eq(sync_store_get_file(test_store, file, &stored), 0);
    ck_assert_uint_eq(stored.last_integrated_client_version, 4);
    ck_assert_int_eq(stored.last_seen_ms, 5000);
    sync_store_file_clear(&stored);
    ck_assert_uint_eq(statistics_now().server_version, 6);
    ck_assert_uint_eq(statistics_now().history_changesets, 6);
}
END_TEST

static void assert_nothing_integrated(void)
{
    assert_document("Task", "1", NULL);
    sync_store_statistics statistics = statistics_now();
    ck_assert_uint_eq(statistics.server_version, 0);
    ck_assert_uint_eq(statistics.history_changesets, 0);
    ck_assert_uint_eq(statistics.objects, 0);
    char *scanned = scan_all("Task");
    ck_assert_str_eq(scanned, "");
    free(scanned);
}

static void assert_results_cleared(const sync_store_integration *results, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        ck_assert(!results[index].skipped);
        ck_assert_uint_eq(results[index].server_version, 0);
        ck_assert_ptr_null(results[index].changes);
        ck_assert_uint_eq(results[index].change_count, 0);
    }
}

START_TEST(test_integration_is_all_or_nothing)
{
    uint64_t file = new_file("u");
    changeset changesets[3];
    start_changeset(&changesets[0], file, 1, 1000);
    add_document(&changesets[0], "Task", "{\"_id\": 1, \"title\": \"a\"}");
    start_changeset(&changesets[1], 99, 1, 1000);
    add(&changesets[1], CHANGESET_CREATE, "Task", "2", NULL, NULL);
    start_changeset(&changesets[2], 0, 0, 1000);
    add(&changesets[2], CHANGESET_CREATE, "Task", "3", NULL, NULL);
    sync_store_integration results[3];
    ck_assert_int_eq(sync_store_integrate(test_store, changesets, 3, 1000, results), -ENOENT);
    ck_assert_ptr_nonnull(strstr(sync_store_last_error(), "99"));
    assert_results_cleared(results, 3);
    assert_nothing_integrated();
    sync_store_file stored = { 0 };
    ck_assert_int_eq(sync_store_get_file(test_store, file, &stored), 0);
    ck_assert_uint_eq(stored.last_integrated_client_version, 0);
    sync_store_file_clear(&stored);

    /* A failure after the instructions of earlier changesets were joined:
     * an id too long for a key. */
    char long_id[600];
    memset(long_id, 'i', sizeof long_id - 1);
    long_id[0] = long_id[sizeof long_id - 2] = '"';
    long_id[sizeof long_id - 1] = '\0';
    changeset_clear(&changesets[1]);
    start_changeset(&changesets[1], 0, 0, 1000);
    add(&changesets[1], CHANGESET_CREATE, "Task", long_id, NULL, NULL);
    ck_assert_int_eq(sync_store_integrate(test_store, changesets, 3, 1000, results),
                     -ENAMETOOLONG);
    assert_results_cleared(results, 3);
    assert_nothing_integrated();

    /* The same array without the bad changeset goes in whole. */
    changeset_clear(&changesets[1]);
    changesets[1] = changesets[2];
    integrate_ok(changesets, 2, 1000, results);
    assert_document("Task", "1", "{\"_id\": 1, \"title\": \"a\"}");
    assert_document("Task", "3", "{\"_id\": 3}");
    sync_store_integration_clear(&results[0]);
    sync_store_integration_clear(&results[1]);
    changeset_clear(&changesets[0]);
    changeset_clear(&changesets[1]);
}
END_TEST

START_TEST(test_id_errors)
{
    json_t *id = json_real(1.5);
    json_t *document = NULL;
    ck_assert_int_eq(sync_store_get_document(test_store, "Task", id, &document), -EINVAL);
    ck_assert_ptr_nonnull(strstr(sync_store_last_error(), "double"));
    json_decref(id);
    id = json_integer(1);
    ck_assert_int_eq(sync_store_get_document(test_store, "Task", id, &document), -ENOENT);
    ck_assert_ptr_nonnull(strstr(sync_store_last_error(), "Task"));
    ck_assert_int_eq(sync_store_get_document(test_store, "", id, &document), -EINVAL);
    ck_assert_ptr_null(document);
    json_decref(id);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Merge results do not depend on the order of integration             */

enum { MERGE_ORIGINS = 3, MERGE_CHANGESETS_PER_ORIGIN = 3 };

/* The objects make_merge_changesets writes to: collection, id. */
static const char *const merge_objects[][2] = {
    { "Note", "\"n\"" }, { "Task", "1" }, { "Task", "2" }, { "Task", "3" },
};

/* Three clients' changesets on the same objects: concurrent sets of one
 * field, a delete concurrent with updates, the same object created by
 * two clients, embedded documents written field by field. */
static void make_merge_changesets(const uint64_t files[MERGE_ORIGINS],
                                  changeset changesets[MERGE_ORIGINS][MERGE_CHANGESETS_PER_ORIGIN])
{
    for (int origin = 0; origin < MERGE_ORIGINS; origin++)
        for (int version = 0; version < MERGE_CHANGESETS_PER_ORIGIN; version++)
            start_changeset(&changesets[origin][version], files[origin], (uint64_t)version + 1,
                            1000 * (version + 1) + 10 * origin);
    changeset *a = changesets[0], *b = changesets[1], *c = changesets[2];
    add(&a[0], CHANGESET_CREATE, "Task", "1", NULL, NULL);
    add(&a[0], CHANGESET_SET, "Task", "1", "title", "\"from a\"");
    add(&a[0], CHANGESET_SET, "Task", "1", "address.city", "\"Paris\"");
    add(&b[0], CHANGESET_CREATE, "Task", "1", NULL, NULL);
    add(&b[0], CHANGESET_SET, "Task", "1", "title", "\"from b\"");
    add(&b[0], CHANGESET_SET, "Task", "1", "address.zip", "\"75001\"");
    add(&c[0], CHANGESET_CREATE, "Task", "2", NULL, NULL);
    add(&c[0], CHANGESET_SET, "Task", "2", "n", "1");
    add(&a[1], CHANGESET_SET, "Task", "2", "n", "2");
    add(&b[1], CHANGESET_DELETE, "Task", "2", NULL, NULL);
    add(&c[1], CHANGESET_SET, "Task", "1", "title", "\"from c\"");
    add(&c[1], CHANGESET_UNSET, "Task", "1", "address.city", NULL);
    add(&a[2], CHANGESET_CREATE, "Task", "3", NULL, NULL);
    add(&a[2], CHANGESET_SET, "Task", "3", "tags", "[\"x\", \"y\"]");
    add(&b[2], CHANGESET_CREATE, "Task", "3", NULL, NULL);
    add(&b[2], CHANGESET_SET, "Task", "3", "owner", "\"b\"");
    add(&c[2], CHANGESET_SET, "Note", "\"n\"", "text", "\"orphan\"");
    add(&c[2], CHANGESET_CREATE, "Note", "\"n\"", NULL, NULL);
}

/* Appends "<collection> <text or absent>\n" to *all; takes text. */
static void append_object_line(char **all, const char *collection, char *text)
{
    char *joined;
    ck_assert_int_ge(asprintf(&joined, "%s%s %s\n", *all, collection,
                              text != NULL ? text : "absent"),
                     0);
    free(*all);
    free(text);
    *all = joined;
}

/* The documents object_state gives when every instruction is joined in
 * reverse order, one object at a time. */
static char *documents_by_object_state(
    changeset changesets[MERGE_ORIGINS][MERGE_CHANGESETS_PER_ORIGIN])
{
    char *all = strdup("");
    for (size_t object = 0; object < sizeof merge_objects / sizeof merge_objects[0]; object++) {
        json_t *id = value_of(merge_objects[object][1]);
        object_state *state = object_state_new(id);
        for (int origin = MERGE_ORIGINS - 1; origin >= 0; origin--)
            for (int version = MERGE_CHANGESETS_PER_ORIGIN - 1; version >= 0; version--) {
                const changeset *changeset = &changesets[origin][version];
                for (size_t index = changeset->count; index-- > 0;) {
                    const changeset_instruction *instruction = &changeset->instructions[index];
                    if (strcmp(instruction->collection, merge_objects[object][0]) != 0
                        || !json_equal(instruction->id, id))
                        continue;
                    changeset_clock clock = changeset_instruction_clock(changeset, index);
                    ck_assert_int_ge(object_state_apply(state, instruction, &clock), 0);
                }
            }
        json_t *document;
        ck_assert_int_eq(object_state_document(state, &document), 0);
        append_object_line(&all, merge_objects[object][0], format_or_null(document));
        json_decref(document);
        object_state_free(state);
        json_decref(id);
    }
    return all;
}

static char *documents_in_store(void)
{
    char *all = strdup("");
    for (size_t object = 0; object < sizeof merge_objects / sizeof merge_objects[0]; object++) {
        append_object_line(&all, merge_objects[object][0],
                           document_text(merge_objects[object][0], merge_objects[object][1]));
    }
    return all;
}

START_TEST(test_merge_does_not_depend_on_order)
{
    uint64_t files[MERGE_ORIGINS];
    changeset changesets[MERGE_ORIGINS][MERGE_CHANGESETS_PER_ORIGIN];
    char *expected = NULL;
    unsigned int seed = 12345;
    for (int round = 0; round < 12; round++) {
        for (int origin = 0; origin < MERGE_ORIGINS; origin++)
            files[origin] = new_file("u");
        make_merge_changesets(files, changesets);
        if (expected == NULL) {
            expected = documents_by_object_state(changesets);
            /* What the rules say, spelled out for the cases above. */
            ck_assert_str_eq(expected,
                             "Note {\"_id\": \"n\"}\n"
                             "Task {\"_id\": 1, \"title\": \"from c\", \"address\": "
                             "{\"zip\": \"75001\"}}\n"
                             "Task absent\n"
                             "Task {\"_id\": 3, \"tags\": [\"x\", \"y\"], \"owner\": \"b\"}\n");
        }
        /* A random interleaving of the three clients' uploads, each
         * client's in its own order, integrated in arrays of 1 to 3. */
        int next[MERGE_ORIGINS] = { 0 };
        changeset order[MERGE_ORIGINS * MERGE_CHANGESETS_PER_ORIGIN];
        for (size_t taken = 0; taken < MERGE_ORIGINS * MERGE_CHANGESETS_PER_ORIGIN;) {
            int origin = rand_r(&seed) % MERGE_ORIGINS;
            if (next[origin] < MERGE_CHANGESETS_PER_ORIGIN)
                order[taken++] = changesets[origin][next[origin]++];
        }
        for (size_t start = 0; start < MERGE_ORIGINS * MERGE_CHANGESETS_PER_ORIGIN;) {
            size_t count = 1 + (size_t)rand_r(&seed) % 3;
            if (start + count > MERGE_ORIGINS * MERGE_CHANGESETS_PER_ORIGIN)
                count = MERGE_ORIGINS * MERGE_CHANGESETS_PER_ORIGIN - start;
            sync_store_integration results[3];
            integrate_ok(&order[start], count, 1000, results);
            for (size_t index = 0; index < count; index++)
                sync_store_integration_clear(&results[index]);
            start += count;
        }
        char *found = documents_in_store();
        ck_assert_str_eq(found, expected);
        free(found);
        for (int origin = 0; origin < MERGE_ORIGINS; origin++)
            for (int version = 0; version < MERGE_CHANGESETS_PER_ORIGIN; version++)
                changeset_clear(&changesets[origin][version]);
        /* The next round starts from a fresh store. */
        close_test_store();
        open_test_store();
    }
    free(expected);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Snapshots and scans                                                 */

START_TEST(test_snapshot_does_not_see_later_writes)
{
    changeset changeset;
    start_changeset(&changeset, 0, 0, 1000);
    add_document(&changeset, "Task", "{\"_id\": 1, \"n\": 1}");
    integrate_single(&changeset, 1000);

    sync_store_snapshot *before;
    ck_assert_int_eq(sync_store_snapshot_begin(test_store, &before), 0);
    ck_assert_uint_eq(sync_store_snapshot_version(before), 1);
    /* Writes go on while the snapshot is open. */
    start_changeset(&changeset, 0, 0, 2000);
    add(&changeset, CHANGESET_SET, "Task", "1", "n", "2");
    add_document(&changeset, "Task", "{\"_id\": 2}");
    ck_assert_uint_eq(integrate_single(&changeset, 2000), 2);
    sync_store_snapshot *after;
    ck_assert_int_eq(sync_store_snapshot_begin(test_store, &after), 0);
    ck_assert_uint_eq(sync_store_snapshot_version(after), 2);

    char *old_text = scan_text(before, "Task", NULL);
    ck_assert_str_eq(old_text, "1 {\"_id\": 1, \"n\": 1}\n");
    char *new_text = scan_text(after, "Task", NULL);
    ck_assert_str_eq(new_text, "1 {\"_id\": 1, \"n\": 2}\n2 {\"_id\": 2}\n");
    uint64_t count;
    ck_assert_int_eq(sync_store_snapshot_count(before, "Task", &count), 0);
    ck_assert_uint_eq(count, 1);
    ck_assert_int_eq(sync_store_snapshot_count(after, "Task", &count), 0);
    ck_assert_uint_eq(count, 2);
    ck_assert_int_eq(sync_store_snapshot_count(after, "Never", &count), 0);
    ck_assert_uint_eq(count, 0);
    assert_document("Task", "1", "{\"_id\": 1, \"n\": 2}");
    free(old_text);
    free(new_text);
    old_text = document_text_in(before, "Task", "1");
    ck_assert_str_eq(old_text, "{\"_id\": 1, \"n\": 1}");
    ck_assert_ptr_null(document_text_in(before, "Task", "2"));
    ck_assert_ptr_null(document_text_in(after, "Never", "1"));
    new_text = document_text_in(after, "Task", "2");
    ck_assert_str_eq(new_text, "{\"_id\": 2}");
    free(old_text);
    free(new_text);
    sync_store_snapshot_end(before);
    sync_store_snapshot_end(after);
    sync_store_snapshot_end(NULL);
}
END_TEST

static void add_ids(const char *collection, const char *const *ids, size_t count)
{
    changeset changeset;
    start_changeset(&changeset, 0, 0, 1000);
    for (size_t index = 0; index < count; index++)
        add(&changeset, CHANGESET_CREATE, collection, ids[index], NULL, NULL);
    integrate_single(&changeset, 1000);
}

START_TEST(test_scan_order_and_resume)
{
    /* Given out of order: ints numerically, then ObjectIds, then strings
     * by bytes. */
    const char *const ids[] = {
        "\"b\"", "{\"$oid\": \"650000000000000000000002\"}", "5", "-7", "\"a\"",
        "{\"$oid\": \"650000000000000000000001\"}", "{\"$numberLong\": \"9007199254740993\"}",
    };
    add_ids("Task", ids, sizeof ids / sizeof ids[0]);
    const char *const other[] = { "1" };
    add_ids("TaskList", other, 1);
    add_ids("Tas", other, 1);

    char *all = scan_all("Task");
    ck_assert_str_eq(all, "-7 {\"_id\": -7}\n"
                          "5 {\"_id\": 5}\n"
                          "{\"$numberLong\": \"9007199254740993\"} "
                          "{\"_id\": {\"$numberLong\": \"9007199254740993\"}}\n"
                          "{\"$oid\": \"650000000000000000000001\"} "
                          "{\"_id\": {\"$oid\": \"650000000000000000000001\"}}\n"
                          "{\"$oid\": \"650000000000000000000002\"} "
                          "{\"_id\": {\"$oid\": \"650000000000000000000002\"}}\n"
                          "\"a\" {\"_id\": \"a\"}\n"
                          "\"b\" {\"_id\": \"b\"}\n");
    free(all);

    sync_store_snapshot *snapshot;
    ck_assert_int_eq(sync_store_snapshot_begin(test_store, &snapshot), 0);
    char *rest = scan_text(snapshot, "Task", "{\"$oid\": \"650000000000000000000001\"}");
    ck_assert_str_eq(rest, "{\"$oid\": \"650000000000000000000002\"} "
                           "{\"_id\": {\"$oid\": \"650000000000000000000002\"}}\n"
                           "\"a\" {\"_id\": \"a\"}\n"
                           "\"b\" {\"_id\": \"b\"}\n");
    free(rest);
    /* Resuming after an id that does not exist starts at the next one. */
    rest = scan_text(snapshot, "Task", "\"aa\"");
    ck_assert_str_eq(rest, "\"b\" {\"_id\": \"b\"}\n");
    free(rest);
    rest = scan_text(snapshot, "Task", "\"b\"");
    ck_assert_str_eq(rest, "");
    free(rest);
    rest = scan_text(snapshot, "Empty", NULL);
    ck_assert_str_eq(rest, "");
    free(rest);
    json_t *bad = json_true();
    ck_assert_int_eq(sync_store_snapshot_scan(snapshot, "Task", bad, collect_document, NULL),
                     -EINVAL);
    json_decref(bad);
    ck_assert_int_eq(sync_store_snapshot_scan(snapshot, "", NULL, collect_document, NULL),
                     -EINVAL);
    sync_store_snapshot_end(snapshot);
}
END_TEST

static int stop_after_two(const sync_store_document_view *document, void *context)
{
    (void)document;
    int *visits = context;
    return ++*visits == 2 ? 42 : 0;
}

static int collect_name(const char *collection, void *context)
{
    char *names = context;
    strcat(names, collection);
    strcat(names, ";");
    return 0;
}

START_TEST(test_scan_stops_and_collections_are_listed)
{
    const char *const ids[] = { "1", "2", "3" };
    add_ids("Task", ids, 3);
    add_ids("Alpha", ids, 1);
    changeset changeset;
    start_changeset(&changeset, 0, 0, 2000);
    add(&changeset, CHANGESET_DELETE, "Alpha", "1", NULL, NULL);
    integrate_single(&changeset, 2000);

    sync_store_snapshot *snapshot;
    ck_assert_int_eq(sync_store_snapshot_begin(test_store, &snapshot), 0);
    int visits = 0;
    ck_assert_int_eq(sync_store_snapshot_scan(snapshot, "Task", NULL, stop_after_two, &visits), 42);
    ck_assert_int_eq(visits, 2);
    char names[64] = "";
    ck_assert_int_eq(sync_store_snapshot_list_collections(snapshot, collect_name, names), 0);
    /* Alpha held an object, so it is listed, with a count of 0. */
    ck_assert_str_eq(names, "Alpha;Task;");
    uint64_t count;
    ck_assert_int_eq(sync_store_snapshot_count(snapshot, "Alpha", &count), 0);
    ck_assert_uint_eq(count, 0);
    ck_assert_int_eq(sync_store_snapshot_count(snapshot, "Task", &count), 0);
    ck_assert_uint_eq(count, 3);
    sync_store_snapshot_end(snapshot);
}
END_TEST

/* ------------------------------------------------------------------ */
/* History                                                             */

typedef struct history_visits {
    char text[1024];
    int stop_at;
} history_visits;

static int collect_history(uint64_t server_version, const changeset *changeset, void *context)
{
    history_visits *visits = context;
    size_t used = strlen(visits->text);
    snprintf(visits->text + used, sizeof visits->text - used, "%llu:%llu/%llu@%lld#%zu;",
             (unsigned long long)server_version, (unsigned long long)changeset->origin,
             (unsigned long long)changeset->client_version, (long long)changeset->timestamp,
             changeset->count);
    return (int)server_version == visits->stop_at ? -1234 : 0;
}

static char *history_after(uint64_t after_version, int *result)
{
    static history_visits visits;
    visits = (history_visits){ .stop_at = -1 };
    *result = sync_store_scan_history(test_store, after_version, collect_history, &visits);
    return visits.text;
}

/* Five changesets integrated at 1000, 2000, ... 5000 ms. */
static void integrate_five(void)
{
    uint64_t file = new_file("u");
    for (int64_t index = 1; index <= 5; index++) {
        changeset changeset;
        start_changeset(&changeset, index % 2 == 0 ? file : 0, index % 2 == 0 ? (uint64_t)index : 0,
                        index * 100);
        for (int64_t instruction = 0; instruction < index; instruction++)
            add(&changeset, CHANGESET_SET, "Task", "1", "n", "1");
        ck_assert_uint_eq(integrate_single(&changeset, index * 1000), (uint64_t)index);
    }
}

START_TEST(test_history_scan)
{
    integrate_five();
    int result;
    ck_assert_str_eq(history_after(0, &result),
                     "1:0/0@100#1;2:1/2@200#2;3:0/0@300#3;4:1/4@400#4;5:0/0@500#5;");
    ck_assert_int_eq(result, 0);
    ck_assert_str_eq(history_after(3, &result), "4:1/4@400#4;5:0/0@500#5;");
    ck_assert_str_eq(history_after(5, &result), "");
    ck_assert_int_eq(result, 0);
    ck_assert_str_eq(history_after(UINT64_MAX, &result), "");
    ck_assert_int_eq(result, 0);

    history_visits visits = { .stop_at = 2 };
    ck_assert_int_eq(sync_store_scan_history(test_store, 0, collect_history, &visits), -1234);
    ck_assert_str_eq(visits.text, "1:0/0@100#1;2:1/2@200#2;");

    /* A set on an object that does not exist changes no document; the
     * history has the changeset all the same. */
    changeset changeset;
    start_changeset(&changeset, 0, 0, 600);
    add(&changeset, CHANGESET_SET, "Task", "1", "path.deeper",
        "{\"$date\": \"2024-05-01T12:00:00Z\"}");
    integrate_single(&changeset, 6000);
    visits = (history_visits){ .stop_at = -1 };
    ck_assert_int_eq(sync_store_scan_history(test_store, 5, collect_history, &visits), 0);
    ck_assert_str_eq(visits.text, "6:0/0@600#1;");
}
END_TEST

START_TEST(test_trim_history)
{
    integrate_five();
    ck_assert_int_eq(sync_store_trim_history(test_store, 3000), 2);
    sync_store_statistics statistics = statistics_now();
    ck_assert_uint_eq(statistics.oldest_history, 3);
    ck_assert_uint_eq(statistics.history_changesets, 3);
    ck_assert_uint_eq(statistics.server_version, 5);
    int result;
    history_after(1, &result);
    ck_assert_int_eq(result, -ESTALE);
    ck_assert_ptr_nonnull(strstr(sync_store_last_error(), "3"));
    ck_assert_str_eq(history_after(0, &result), "");
    ck_assert_int_eq(result, -ESTALE);
    ck_assert_str_eq(history_after(2, &result), "3:0/0@300#3;4:1/4@400#4;5:0/0@500#5;");
    ck_assert_int_eq(result, 0);
    /* Nothing old enough: nothing changes. */
    ck_assert_int_eq(sync_store_trim_history(test_store, 3000), 0);
    ck_assert_uint_eq(statistics_now().oldest_history, 3);

    reopen_test_store();
    ck_assert_int_eq(sync_store_trim_history(test_store, INT64_MAX), 3);
    statistics = statistics_now();
    ck_assert_uint_eq(statistics.oldest_history, 6);
    ck_assert_uint_eq(statistics.history_changesets, 0);
    ck_assert_str_eq(history_after(5, &result), "");
    ck_assert_int_eq(result, 0);
    history_after(4, &result);
    ck_assert_int_eq(result, -ESTALE);
    /* Trimming the history changes no document. */
    assert_document("Task", "1", NULL);

    changeset changeset;
    start_changeset(&changeset, 0, 0, 700);
    add_document(&changeset, "Task", "{\"_id\": 1}");
    ck_assert_uint_eq(integrate_single(&changeset, 7000), 6);
    ck_assert_str_eq(history_after(5, &result), "6:0/0@700#1;");
    assert_document("Task", "1", "{\"_id\": 1}");
}
END_TEST

START_TEST(test_trim_forgets_old_tombstones)
{
    changeset changeset;
    start_changeset(&changeset, 0, 0, 1000);
    add_document(&changeset, "Task", "{\"_id\": 1, \"n\": 1}");
    add_document(&changeset, "Task", "{\"_id\": 2, \"n\": 2}");
    add_document(&changeset, "Task", "{\"_id\": 3, \"n\": 3}");
    add(&changeset, CHANGESET_DELETE, "Task", "1", NULL, NULL);
    integrate_single(&changeset, 1000);
    start_changeset(&changeset, 0, 0, 5000);
    add(&changeset, CHANGESET_DELETE, "Task", "2", NULL, NULL);
    /* A write without a create leaves a state for an object that does
     * not exist; an old one goes too. */
    add(&changeset, CHANGESET_SET, "Task", "4", "n", "4");
    integrate_single(&changeset, 5000);

    ck_assert_int_ge(sync_store_trim_history(test_store, 3000), 0);

    /* Creates at clocks before the deletes: where the tombstone is gone,
     * the old delete no longer hides the object. */
    start_changeset(&changeset, 0, 0, 500);
    add(&changeset, CHANGESET_CREATE, "Task", "1", NULL, NULL);
    add(&changeset, CHANGESET_CREATE, "Task", "2", NULL, NULL);
    add(&changeset, CHANGESET_CREATE, "Task", "4", NULL, NULL);
    integrate_single(&changeset, 6000);
    assert_document("Task", "1", "{\"_id\": 1}");
    assert_document("Task", "2", NULL);
    assert_document("Task", "3", "{\"_id\": 3, \"n\": 3}");
    /* Task 4's set at 5000 is newer than the cutoff: its state stays. */
    assert_document("Task", "4", "{\"_id\": 4, \"n\": 4}");
    ck_assert_uint_eq(statistics_now().objects, 3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Notices                                                             */

/* A notice of a refused write to Task id (EJSON text); document may be
 * NULL.  Clear it with sync_store_notice_clear. */
static sync_store_notice make_notice(uint64_t file, uint64_t client_version, const char *id,
                                     const char *reason, const char *document)
{
    return (sync_store_notice){
        .file_identity = file,
        .client_version = client_version,
        .collection = strdup("Task"),
        .id = value_of(id),
        .reason = strdup(reason),
        .server_document = document != NULL ? value_of(document) : NULL,
    };
}

/* Integrates one changeset of file, client version, with notices, and
 * returns the result of the call (the changeset is cleared). */
static int integrate_with_notices(uint64_t file, uint64_t client_version, int64_t now_ms,
                                  sync_store_notice *notices, size_t count)
{
    changeset changeset;
    start_changeset(&changeset, file, client_version, now_ms);
    add(&changeset, CHANGESET_SET, "Task", "1", "n", "1");
    sync_store_integration result;
    int status = sync_store_integrate_upload(test_store, &changeset, 1, notices, count, now_ms,
                                             &result);
    sync_store_integration_clear(&result);
    changeset_clear(&changeset);
    for (size_t index = 0; index < count; index++)
        sync_store_notice_clear(&notices[index]);
    return status;
}

/* The file's unseen notices after last_server_version, one line each:
 * "client_version:server_version collection id reason document". */
static char *take_notices(uint64_t file, uint64_t last_server_version)
{
    sync_store_notice *notices;
    size_t count;
    ck_assert_msg(sync_store_take_unseen_notices(test_store, file, last_server_version, &notices,
                                                 &count) == 0,
                  "%s", sync_store_last_error());
    char *text = strdup("");
    for (size_t index = 0; index < count; index++) {
        const sync_store_notice *notice = &notices[index];
        ck_assert_uint_eq(notice->file_identity, file);
        char *id = format_or_null(notice->id);
        char *document = format_or_null(notice->server_document);
        char line[512];
        snprintf(line, sizeof line, "%llu:%llu %s %s %s %s\n",
                 (unsigned long long)notice->client_version,
                 (unsigned long long)notice->server_version, notice->collection, id,
                 notice->reason, document != NULL ? document : "null");
        text = realloc(text, strlen(text) + strlen(line) + 1);
        strcat(text, line);
        free(id);
        free(document);
    }
    sync_store_notices_free(notices, count);
    return text;
}

static void assert_notices(uint64_t file, uint64_t last_server_version, const char *expected)
{
    char *text = take_notices(file, last_server_version);
    ck_assert_str_eq(text, expected);
    free(text);
}

START_TEST(test_notices_wait_until_seen)
{
    uint64_t alice = new_file("alice");
    uint64_t bob = new_file("bob");
    sync_store_notice first[] = {
        make_notice(alice, 1, "2", "not yours", "{\"_id\": 2, \"n\": 2.5}"),
        make_notice(alice, 1, "{\"$oid\": \"6650f0c2e4b0a1b2c3d4e5f6\"}", "no role", NULL),
    };
    ck_assert_int_eq(integrate_with_notices(alice, 1, 1000, first, 2), 0);
    sync_store_notice second[] = { make_notice(alice, 2, "\"x\"", "schema", "{\"_id\": \"x\"}") };
    ck_assert_int_eq(integrate_with_notices(alice, 2, 2000, second, 1), 0);
    /* A re-upload integrates nothing, so it can have no notice. */
    sync_store_notice again[] = { make_notice(alice, 2, "3", "late", NULL) };
    ck_assert_int_eq(integrate_with_notices(alice, 2, 3000, again, 1), -EINVAL);
    reopen_test_store();

    assert_notices(bob, 0, "");
    /* Not seen: kept, and given again. */
    const char *all =
        "1:1 Task 2 not yours {\"_id\": 2, \"n\": 2.5}\n"
        "1:1 Task {\"$oid\": \"6650f0c2e4b0a1b2c3d4e5f6\"} no role null\n"
        "2:2 Task \"x\" schema {\"_id\": \"x\"}\n";
    assert_notices(alice, 0, all);
    assert_notices(alice, 0, all);
    /* Seen up to version 1: those go for good. */
    assert_notices(alice, 1, "2:2 Task \"x\" schema {\"_id\": \"x\"}\n");
    assert_notices(alice, 0, "2:2 Task \"x\" schema {\"_id\": \"x\"}\n");
    assert_notices(alice, 2, "");
    assert_notices(alice, 0, "");
}
END_TEST

START_TEST(test_notices_go_with_their_integration)
{
    uint64_t alice = new_file("alice");
    /* A notice of a file that does not exist fails the whole upload. */
    sync_store_notice stray[] = {
        make_notice(alice, 1, "2", "fine", NULL),
        make_notice(alice + 1, 1, "3", "no such file", NULL),
    };
    ck_assert_int_eq(integrate_with_notices(alice, 1, 1000, stray, 2), -ENOENT);
    ck_assert_uint_eq(statistics_now().server_version, 0);
    assert_notices(alice, 0, "");
    /* Nor may a notice lack what the client is told. */
    sync_store_notice empty[] = { { .file_identity = alice, .client_version = 1 } };
    ck_assert_int_eq(integrate_with_notices(alice, 1, 1000, empty, 1), -EINVAL);
    ck_assert_uint_eq(statistics_now().server_version, 0);
    sync_store_notice *notices;
    size_t count;
    ck_assert_int_eq(sync_store_take_unseen_notices(test_store, 0, 0, &notices, &count), -EINVAL);
}
END_TEST

START_TEST(test_trim_forgets_notices_of_trimmed_history)
{
    uint64_t alice = new_file("alice");
    sync_store_notice old[] = { make_notice(alice, 1, "2", "old", NULL) };
    ck_assert_int_eq(integrate_with_notices(alice, 1, 1000, old, 1), 0);
    sync_store_notice recent[] = { make_notice(alice, 2, "3", "recent", NULL) };
    ck_assert_int_eq(integrate_with_notices(alice, 2, 5000, recent, 1), 0);
    ck_assert_int_eq(sync_store_trim_history(test_store, 3000), 1);
    assert_notices(alice, 0, "2:2 Task 3 recent null\n");
    ck_assert_int_eq(sync_store_trim_history(test_store, INT64_MAX), 1);
    assert_notices(alice, 0, "");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Durability                                                          */

START_TEST(test_reopen_keeps_everything)
{
    uint64_t file = new_file("u");
    changeset changeset;
    start_changeset(&changeset, file, 1, 1000);
    add_document(&changeset, "Task", "{\"_id\": 1, \"s\": \"a\\u0000b\", \"d\": 1.5}");
    integrate_single(&changeset, 1000);
    sync_store_statistics before = statistics_now();
    reopen_test_store();
    sync_store_statistics after = statistics_now();
    ck_assert_uint_eq(after.server_version, before.server_version);
    ck_assert_uint_eq(after.objects, 1);
    ck_assert_uint_eq(after.files, 1);
    ck_assert_uint_eq(after.history_changesets, 1);
    assert_document("Task", "1", "{\"_id\": 1, \"s\": \"a\\u0000b\", \"d\": 1.5}");
    /* The merge state came back too: an older write loses to the stored
     * one (but, written earlier, moves its field first), a newer one
     * wins. */
    start_changeset(&changeset, 0, 0, 900);
    add(&changeset, CHANGESET_SET, "Task", "1", "d", "2.5");
    integrate_single(&changeset, 2000);
    assert_document("Task", "1", "{\"_id\": 1, \"d\": 1.5, \"s\": \"a\\u0000b\"}");
    start_changeset(&changeset, 0, 0, 1100);
    add(&changeset, CHANGESET_SET, "Task", "1", "d", "3.5");
    integrate_single(&changeset, 2000);
    assert_document("Task", "1", "{\"_id\": 1, \"d\": 3.5, \"s\": \"a\\u0000b\"}");
    /* The file's progress too. */
    start_changeset(&changeset, file, 1, 1200);
    add(&changeset, CHANGESET_SET, "Task", "1", "d", "4.5");
    sync_store_integration result;
    integrate_ok(&changeset, 1, 2000, &result);
    ck_assert(result.skipped);
    sync_store_integration_clear(&result);
    changeset_clear(&changeset);
}
END_TEST

START_TEST(test_integrated_survives_kill)
{
    /* The child opens its own environment: an LMDB environment must not
     * cross a fork. */
    sync_store_close(test_store);
    test_store = NULL;
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t child = fork();
    ck_assert_int_ne(child, -1);
    if (child == 0) {
        sync_store *store;
        if (sync_store_open(data_directory, 0, &store) != 0)
            _exit(1);
        changeset changeset = { .timestamp = 1000 };
        json_t *id = json_integer(7), *value = json_string("kept");
        if (changeset_append(&changeset, CHANGESET_CREATE, "Task", id, NULL, NULL, NULL, 0) != 0
            || changeset_append(&changeset, CHANGESET_SET, "Task", id, "s", value, NULL, 0) != 0)
            _exit(2);
        sync_store_integration result;
        if (sync_store_integrate(store, &changeset, 1, 1000, &result) != 0)
            _exit(3);
        if (write(ready[1], "x", 1) != 1)
            _exit(4);
        pause();
        _exit(5);
    }
    close(ready[1]);
    char byte;
    ck_assert_int_eq(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    ck_assert_int_eq(sync_store_open(data_directory, 0, &test_store), 0);
    assert_document("Task", "7", "{\"_id\": 7, \"s\": \"kept\"}");
    ck_assert_uint_eq(statistics_now().server_version, 1);
}
END_TEST

/* ------------------------------------------------------------------ */

static TCase *test_case(const char *name)
{
    TCase *test_case = tcase_create(name);
    tcase_add_checked_fixture(test_case, open_test_store, close_test_store);
    return test_case;
}

Suite *unit_suite(void)
{
    Suite *suite = suite_create("sync_store");

    TCase *files = test_case("files");
    tcase_add_test(files, test_new_store_is_empty);
    tcase_add_test(files, test_open_errors);
    tcase_add_test(files, test_files);
    suite_add_tcase(suite, files);

    TCase *integration = test_case("integration");
    tcase_add_test(integration, test_integrate_reports_changes);
    tcase_add_test(integration, test_reintegration_is_idempotent);
    tcase_add_test(integration, test_object_state_is_the_stored_one);
    tcase_add_test(integration, test_integration_is_all_or_nothing);
    tcase_add_test(integration, test_id_errors);
    tcase_add_test(integration, test_merge_does_not_depend_on_order);
    suite_add_tcase(suite, integration);

    TCase *snapshots = test_case("snapshots");
    tcase_add_test(snapshots, test_snapshot_does_not_see_later_writes);
    tcase_add_test(snapshots, test_scan_order_and_resume);
    tcase_add_test(snapshots, test_scan_stops_and_collections_are_listed);
    suite_add_tcase(suite, snapshots);

    TCase *history = test_case("history");
    tcase_add_test(history, test_history_scan);
    tcase_add_test(history, test_trim_history);
    tcase_add_test(history, test_trim_forgets_old_tombstones);
    suite_add_tcase(suite, history);

    TCase *notices = test_case("notices");
    tcase_add_test(notices, test_notices_wait_until_seen);
    tcase_add_test(notices, test_notices_go_with_their_integration);
    tcase_add_test(notices, test_trim_forgets_notices_of_trimmed_history);
    suite_add_tcase(suite, notices);

    TCase *durability = test_case("durability");
    tcase_add_test(durability, test_reopen_keeps_everything);
    tcase_add_test(durability, test_integrated_survives_kill);
    suite_add_tcase(suite, durability);
    return suite;
}

/*
 * Unit tests of the LMDB object store (store.h).
 *
 * Every test gets a fresh store in its own directory below one temporary
 * base directory; the base directory is removed after each test case even
 * when a test failed and could not clean up after itself.
 */
#include "realmfs/store.h"
#include "realmfs/value.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char base_directory[PATH_MAX];
static char test_directory[PATH_MAX];
static char store_directory[PATH_MAX];
static store *test_store;

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */

static int remove_entry(const char *path, const struct stat *status, int type, struct FTW *walk)
{
    (void)status;
    (void)type;
    (void)walk;
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* out has PATH_MAX bytes. */
static void join_path(char *out, const char *parent, const char *child)
{
    int length = snprintf(out, PATH_MAX, "%s/%s", parent, child);
    ck_assert(length > 0 && length < PATH_MAX);
}

static void make_base_directory(void)
{
    snprintf(base_directory, sizeof base_directory, "/tmp/realmfs-test-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base_directory));
}

static void remove_base_directory(void)
{
    remove_tree(base_directory);
}

/* The store lives two levels below a fresh directory, so that every test
 * also exercises the creation of missing parent directories. */
static void open_test_store(void)
{
    join_path(test_directory, base_directory, "test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(test_directory));
    join_path(store_directory, test_directory, "nested/store");
    ck_assert_int_eq(store_open(store_directory, NULL, &test_store), 0);
}

static void close_test_store(void)
{
    store_close(test_store);
    test_store = NULL;
    remove_tree(test_directory);
}

static void reopen_test_store(const store_options *options)
{
    store_close(test_store);
    test_store = NULL;
    ck_assert_int_eq(store_open(store_directory, options, &test_store), 0);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static json_t *new_object_id(uint8_t first_byte, uint8_t other_bytes)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    memset(bytes, other_bytes, sizeof bytes);
    bytes[0] = first_byte;
    json_t *id = value_new_object_id(bytes);
    ck_assert_ptr_nonnull(id);
    return id;
}

static uint64_t put_text(const char *collection, const json_t *id, const char *text)
{
    store_object_info info;
    ck_assert_int_eq(store_put_object(test_store, collection, id, text, strlen(text), 1000, &info), 0);
    ck_assert_uint_eq(info.size, strlen(text));
    return info.version;
}

static void put_int_id(const char *collection, json_int_t number, const char *text)
{
    json_t *id = json_integer(number);
    put_text(collection, id, text);
    json_decref(id);
}

static void assert_object_text(const char *collection, const json_t *id, const char *expected)
{
    char *text = NULL;
    store_object_info info;
    ck_assert_int_eq(store_get_object(test_store, collection, id, &text, &info), 0);
    ck_assert_uint_eq(info.size, strlen(expected));
    ck_assert_str_eq(text, expected);
    free(text);
}

static void assert_object_missing(const char *collection, const json_t *id)
{
    char *text = NULL;
    ck_assert_int_eq(store_get_object(test_store, collection, id, &text, NULL), -ENOENT);
    ck_assert_ptr_null(text);
    ck_assert_str_ne(store_last_error(), "");
}

static void assert_error_mentions(const char *fragment)
{
    ck_assert_msg(strstr(store_last_error(), fragment) != NULL,
                  "\"%s\" does not mention \"%s\"", store_last_error(), fragment);
}

static uint64_t count_objects(const char *collection)
{
    uint64_t count = 0;
    ck_assert_int_eq(store_count_objects(test_store, collection, &count), 0);
    return count;
}

/* Copies of what a scan visited; a scan stops with STOP_RESULT once
 * stop_after objects were seen (0 = never). */
typedef struct scan_record {
    json_t *ids;
    json_t *texts;
    size_t stop_after;
} scan_record;

enum { STOP_RESULT = 42 };

/* Records the visit of object, whose id is id (taking the reference). */
static int record_visit(scan_record *record, json_t *id, const store_object_view *object)
{
    ck_assert_int_eq(json_array_append_new(record->ids, id), 0);
    ck_assert_int_eq(json_array_append_new(record->texts,
                                           json_stringn(object->text, object->info.size)), 0);
    if (record->stop_after != 0 && json_array_size(record->ids) == record->stop_after)
        return STOP_RESULT;
    return 0;
}

/* A visitor of store_scan_objects: the id is given, and decoding it again
 * gives the same. */
static int record_object(const store_object_view *object, void *context)
{
    json_t *decoded;
    ck_assert_int_eq(store_object_view_id(object, &decoded), 0);
    ck_assert(json_equal(decoded, object->id));
    json_decref(decoded);
    return record_visit(context, json_deep_copy(object->id), object);
}

/* A visitor of store_scan_object_texts: the id only on request. */
static int record_object_text(const store_object_view *object, void *context)
{
    ck_assert_ptr_null(object->id);
    json_t *id;
    ck_assert_int_eq(store_object_view_id(object, &id), 0);
    return record_visit(context, id, object);
}

static scan_record new_scan_record(size_t stop_after)
{
    scan_record record = { json_array(), json_array(), stop_after };
    ck_assert_ptr_nonnull(record.ids);
    ck_assert_ptr_nonnull(record.texts);
    return record;
}

static void free_scan_record(scan_record *record)
{
    json_decref(record->ids);
    json_decref(record->texts);
}

/* Scans collection from start and checks the ids visited are expected
 * (a json array), and that a scan of texts visits the same objects. */
static void assert_scan(const char *collection, const json_t *start, bool skip_start,
                        const json_t *expected)
{
    scan_record record = new_scan_record(0), texts = new_scan_record(0);
    ck_assert_int_eq(store_scan_objects(test_store, collection, start, skip_start,
                                        record_object, &record), 0);
    char *seen = json_dumps(record.ids, JSON_COMPACT);
    ck_assert_msg(json_equal(record.ids, expected), "scan visited %s", seen);
    free(seen);
    ck_assert_int_eq(store_scan_object_texts(test_store, collection, start, skip_start,
                                             record_object_text, &texts), 0);
    ck_assert(json_equal(texts.ids, record.ids));
    ck_assert(json_equal(texts.texts, record.texts));
    free_scan_record(&texts);
    free_scan_record(&record);
}

static json_t *int_array(int first, int last, int step)
{
    json_t *array = json_array();
    ck_assert_ptr_nonnull(array);
    for (int number = first; number <= last; number += step)
        ck_assert_int_eq(json_array_append_new(array, json_integer(number)), 0);
    return array;
}

static int record_name(const char *name, void *context)
{
    ck_assert_int_eq(json_array_append_new(context, json_string(name)), 0);
    return 0;
}

static int stop_at_first_name(const char *name, void *context)
{
    record_name(name, context);
    return STOP_RESULT;
}

static void assert_names(int (*list)(store *, int (*)(const char *, void *), void *),
                         const char *expected_json)
{
    json_t *names = json_array();
    ck_assert_ptr_nonnull(names);
    ck_assert_int_eq(list(test_store, record_name, names), 0);
    json_t *expected = json_loads(expected_json, 0, NULL);
    ck_assert_ptr_nonnull(expected);
    ck_assert_msg(json_equal(names, expected), "expected %s", expected_json);
    json_decref(expected);
    json_decref(names);
}

/* ------------------------------------------------------------------ */
/* Collections                                                         */

START_TEST(test_create_and_drop_collection)
{
    ck_assert_int_eq(store_has_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_has_collection(test_store, "Task"), 1);
    ck_assert_int_eq(store_create_collection(test_store, "Task"), -EEXIST);
    assert_error_mentions("Task");
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_has_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), -ENOENT);
    assert_error_mentions("drop collection");
}
END_TEST

START_TEST(test_drop_refuses_collection_with_objects)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    put_int_id("Task", 1, "{}\n");
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), -ENOTEMPTY);
    assert_error_mentions("Task");
    ck_assert_int_eq(store_has_collection(test_store, "Task"), 1);
    json_t *id = json_integer(1);
    ck_assert_int_eq(store_delete_object(test_store, "Task", id), 0);
    json_decref(id);
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), 0);
}
END_TEST

START_TEST(test_object_counts_follow_every_write)
{
    /* "Tas" and "Task" share a prefix, so a count cannot leak between them */
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_create_collection(test_store, "Tas"), 0);
    ck_assert_uint_eq(count_objects("Task"), 0);
    for (json_int_t number = 1; number <= 3; number++)
        put_int_id("Task", number, "{}\n");
    put_int_id("Tas", 1, "{}\n");
    put_int_id("Task", 2, "{\"replaced\": true}\n");
    ck_assert_uint_eq(count_objects("Task"), 3);
    ck_assert_uint_eq(count_objects("Tas"), 1);

    json_t *one = json_integer(1), *three = json_integer(3), *four = json_integer(4);
    ck_assert_int_eq(store_delete_object(test_store, "Task", one), 0);
    ck_assert_int_eq(store_delete_object(test_store, "Task", one), -ENOENT);
    ck_assert_int_eq(store_rename_object(test_store, "Task", three, four, "{}", 2, 0, NULL), 0);
    ck_assert_int_eq(store_rename_object(test_store, "Task", four, four, "{}", 2, 0, NULL), 0);
    ck_assert_uint_eq(count_objects("Task"), 2);

    reopen_test_store(NULL);
    ck_assert_uint_eq(count_objects("Task"), 2);
    ck_assert_uint_eq(count_objects("Tas"), 1);
    json_decref(one);
    json_decref(three);
    json_decref(four);
}
END_TEST

START_TEST(test_list_collections_in_byte_order)
{
    const char *names[] = { "b", "a", "B", "ab", "a b" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_int_eq(store_create_collection(test_store, names[i]), 0);
    assert_names(store_list_collections, "[\"B\", \"a\", \"a b\", \"ab\", \"b\"]");

    json_t *visited = json_array();
    ck_assert_int_eq(store_list_collections(test_store, stop_at_first_name, visited), STOP_RESULT);
    ck_assert_uint_eq(json_array_size(visited), 1);
    json_decref(visited);
}
END_TEST

START_TEST(test_collection_names_are_validated)
{
    char too_long[300];
    memset(too_long, 'x', 256);
    too_long[256] = '\0';
    ck_assert_int_eq(store_create_collection(test_store, ""), -EINVAL);
    ck_assert_str_ne(store_last_error(), "");
    ck_assert_int_eq(store_create_collection(test_store, too_long), -ENAMETOOLONG);
    ck_assert_str_ne(store_last_error(), "");
    too_long[255] = '\0';
    ck_assert_int_eq(store_create_collection(test_store, too_long), 0);
    ck_assert_int_eq(store_has_collection(test_store, too_long), 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Objects                                                             */

/* Put, read, replace and delete one object under id. */
static void check_object_life_cycle(const json_t *id)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    assert_object_missing("Task", id);
    store_object_info info;
    ck_assert_int_eq(store_put_object(test_store, "Task", id, "{\"a\": 1}\n", 9, 1234, &info), 0);
    ck_assert_uint_eq(info.size, 9);
    ck_assert_int_eq(info.modified_ns, 1234);
    uint64_t first_version = info.version;
    assert_object_text("Task", id, "{\"a\": 1}\n");

    ck_assert_int_eq(store_put_object(test_store, "Task", id, "{}\n", 3, 5678, NULL), 0);
    ck_assert_int_eq(store_get_object_info(test_store, "Task", id, &info), 0);
    ck_assert_uint_eq(info.size, 3);
    ck_assert_int_eq(info.modified_ns, 5678);
    ck_assert_uint_gt(info.version, first_version);
    assert_object_text("Task", id, "{}\n");
    ck_assert_uint_eq(count_objects("Task"), 1);

    ck_assert_int_eq(store_delete_object(test_store, "Task", id), 0);
    assert_object_missing("Task", id);
    ck_assert_int_eq(store_delete_object(test_store, "Task", id), -ENOENT);
    ck_assert_uint_eq(count_objects("Task"), 0);
}

START_TEST(test_object_with_int_id)
{
    json_t *id = json_integer(-42);
    check_object_life_cycle(id);
    json_decref(id);
}
END_TEST

START_TEST(test_object_with_object_id)
{
    json_t *id = new_object_id(0x65, 0xab);
    check_object_life_cycle(id);
    json_decref(id);
}
END_TEST

START_TEST(test_object_with_string_id_holding_nul)
{
    json_t *id = json_stringn("a\0b", 3);
    check_object_life_cycle(id);
    json_t *shorter = json_string("a");
    ck_assert_int_eq(store_create_collection(test_store, "Other"), 0);
    put_text("Other", id, "with nul");
    assert_object_missing("Other", shorter);
    assert_object_text("Other", id, "with nul");
    json_decref(shorter);
    json_decref(id);
}
END_TEST

START_TEST(test_empty_object_text)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *id = json_string("");
    ck_assert_int_eq(store_put_object(test_store, "Task", id, NULL, 0, 0, NULL), 0);
    assert_object_text("Task", id, "");
    json_decref(id);
}
END_TEST

START_TEST(test_put_requires_collection)
{
    json_t *id = json_integer(1);
    ck_assert_int_eq(store_put_object(test_store, "Missing", id, "{}", 2, 0, NULL), -ENOENT);
    assert_error_mentions("Missing");
    assert_error_mentions("put object");
    ck_assert_int_eq(store_get_object(test_store, "Missing", id, NULL, NULL), -ENOENT);
    assert_error_mentions("no such collection");
    ck_assert_int_eq(store_delete_object(test_store, "Missing", id), -ENOENT);
    uint64_t count;
    ck_assert_int_eq(store_count_objects(test_store, "Missing", &count), -ENOENT);
    json_decref(id);
}
END_TEST

START_TEST(test_ids_of_other_types_are_rejected)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *ids[] = { json_real(1.5), json_null(), json_true(), json_array(),
                      value_new_date(0) };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        ck_assert_ptr_nonnull(ids[i]);
        ck_assert_int_eq(store_put_object(test_store, "Task", ids[i], "{}", 2, 0, NULL), -EINVAL);
        ck_assert_str_ne(store_last_error(), "");
        ck_assert_int_eq(store_get_object(test_store, "Task", ids[i], NULL, NULL), -EINVAL);
        json_decref(ids[i]);
    }
    ck_assert_int_eq(store_put_object(test_store, "Task", NULL, "{}", 2, 0, NULL), -EINVAL);
    ck_assert_uint_eq(count_objects("Task"), 0);
}
END_TEST

START_TEST(test_long_string_ids)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    char text[1000];
    memset(text, 'i', sizeof text);
    json_t *fits = json_stringn(text, 400);
    json_t *too_long = json_stringn(text, 600);
    put_text("Task", fits, "{}");
    assert_object_text("Task", fits, "{}");
    ck_assert_int_eq(store_put_object(test_store, "Task", too_long, "{}", 2, 0, NULL),
                     -ENAMETOOLONG);
    assert_error_mentions("Task");
    json_decref(fits);
    json_decref(too_long);
}
END_TEST

START_TEST(test_versions_increase)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *a = json_string("a");
    json_t *b = json_string("b");
    json_t *c = json_string("c");
    uint64_t first = put_text("Task", a, "1");
    uint64_t second = put_text("Task", b, "2");
    uint64_t third = put_text("Task", a, "3");
    ck_assert_uint_gt(second, first);
    ck_assert_uint_gt(third, second);

    store_object_info info;
    ck_assert_int_eq(store_get_object_info(test_store, "Task", a, &info), 0);
    ck_assert_uint_eq(info.version, third);
    ck_assert_int_eq(store_get_object_info(test_store, "Task", b, &info), 0);
    ck_assert_uint_eq(info.version, second);

    ck_assert_int_eq(store_delete_object(test_store, "Task", b), 0);
    uint64_t after_delete = put_text("Task", c, "4");
    ck_assert_uint_gt(after_delete, third + 1);

    ck_assert_int_eq(store_rename_object(test_store, "Task", c, b, "5", 1, 0, &info), 0);
    ck_assert_uint_gt(info.version, after_delete);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Renaming                                                            */

START_TEST(test_rename_object)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *one = json_integer(1);
    json_t *two = json_string("two");
    put_text("Task", one, "first");
    store_object_info info;
    ck_assert_int_eq(store_rename_object(test_store, "Task", one, two, "second", 6, 77, &info), 0);
    ck_assert_uint_eq(info.size, 6);
    ck_assert_int_eq(info.modified_ns, 77);
    assert_object_missing("Task", one);
    assert_object_text("Task", two, "second");
    ck_assert_uint_eq(count_objects("Task"), 1);
    json_decref(one);
    json_decref(two);
}
END_TEST

START_TEST(test_rename_onto_existing_object)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *from = new_object_id(1, 1);
    json_t *onto = new_object_id(2, 2);
    put_text("Task", from, "from");
    put_text("Task", onto, "onto");
    ck_assert_int_eq(store_rename_object(test_store, "Task", from, onto, "merged", 6, 0, NULL), 0);
    assert_object_missing("Task", from);
    assert_object_text("Task", onto, "merged");
    ck_assert_uint_eq(count_objects("Task"), 1);
    json_decref(from);
    json_decref(onto);
}
END_TEST

START_TEST(test_rename_missing_object_changes_nothing)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *missing = json_integer(7);
    json_t *target = json_integer(8);
    json_t *invalid = json_real(2.5);
    ck_assert_int_eq(store_rename_object(test_store, "Task", missing, target, "x", 1, 0, NULL),
                     -ENOENT);
    assert_object_missing("Task", target);

    put_text("Task", missing, "kept");
    ck_assert_int_eq(store_rename_object(test_store, "Task", missing, invalid, "x", 1, 0, NULL),
                     -EINVAL);
    assert_object_text("Task", missing, "kept");
    ck_assert_int_eq(store_rename_object(test_store, "Absent", missing, target, "x", 1, 0, NULL),
                     -ENOENT);
    json_decref(missing);
    json_decref(target);
    json_decref(invalid);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Order and scans                                                     */

START_TEST(test_ids_are_ordered_by_type_then_value)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    json_t *ordered = json_pack("[I, I, I, I, I, I]", (json_int_t)INT64_MIN, (json_int_t)-5,
                                (json_int_t)-1, (json_int_t)0, (json_int_t)3,
                                (json_int_t)INT64_MAX);
    ck_assert_ptr_nonnull(ordered);
    json_array_append_new(ordered, new_object_id(0x00, 0x01));
    json_array_append_new(ordered, new_object_id(0x7f, 0x00));
    json_array_append_new(ordered, new_object_id(0xff, 0xff));
    json_array_append_new(ordered, json_stringn("", 0));
    json_array_append_new(ordered, json_stringn("a", 1));
    json_array_append_new(ordered, json_stringn("a\0", 2));
    json_array_append_new(ordered, json_stringn("a\0b", 3));
    json_array_append_new(ordered, json_stringn("ab", 2));
    json_array_append_new(ordered, json_stringn("b", 1));
    json_array_append_new(ordered, json_string("\xc3\xa9"));
    size_t count = json_array_size(ordered);
    ck_assert_uint_eq(count, 16);

    /* 7 and 16 are coprime, so this visits every index once, shuffled. */
    for (size_t step = 0; step < count; step++) {
        size_t index = step * 7 % count;
        char text[16];
        snprintf(text, sizeof text, "object %zu", index);
        put_text("Task", json_array_get(ordered, index), text);
    }
    assert_scan("Task", NULL, false, ordered);
    for (size_t index = 0; index < count; index++) {
        char text[16];
        snprintf(text, sizeof text, "object %zu", index);
        assert_object_text("Task", json_array_get(ordered, index), text);
    }
    json_decref(ordered);
}
END_TEST

/* Objects 0, 10, ..., 90 in "Task". */
static void put_tens(void)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    for (int number = 90; number >= 0; number -= 10) {
        char text[16];
        snprintf(text, sizeof text, "object %d", number);
        put_int_id("Task", number, text);
    }
}

/* Expects the ids first, first + 10, ..., last (none when first > last). */
static void assert_scan_from_int(json_int_t start, bool skip_start, int first, int last)
{
    json_t *start_id = json_integer(start);
    json_t *expected = int_array(first, last, 10);
    assert_scan("Task", start_id, skip_start, expected);
    json_decref(expected);
    json_decref(start_id);
}

START_TEST(test_scan_from_start)
{
    put_tens();
    scan_record record = new_scan_record(0);
    ck_assert_int_eq(store_scan_objects(test_store, "Task", NULL, false, record_object, &record), 0);
    json_t *expected_ids = int_array(0, 90, 10);
    ck_assert(json_equal(record.ids, expected_ids));
    ck_assert_str_eq(json_string_value(json_array_get(record.texts, 3)), "object 30");
    json_decref(expected_ids);
    free_scan_record(&record);
}
END_TEST

START_TEST(test_scan_from_middle)
{
    put_tens();
    assert_scan_from_int(30, false, 30, 90);
    assert_scan_from_int(30, true, 40, 90);
    assert_scan_from_int(35, false, 40, 90);
    assert_scan_from_int(35, true, 40, 90);
    assert_scan_from_int(-1000, true, 0, 90);
    assert_scan_from_int(90, true, 100, 90);
    assert_scan_from_int(1000, false, 100, 90);

    json_t *string_start = json_string("");
    json_t *nothing = json_array();
    assert_scan("Task", string_start, false, nothing);
    json_decref(string_start);
    json_decref(nothing);
}
END_TEST

START_TEST(test_scan_stops_when_visit_returns_non_zero)
{
    put_tens();
    scan_record record = new_scan_record(3), texts = new_scan_record(3);
    ck_assert_int_eq(store_scan_objects(test_store, "Task", NULL, false, record_object, &record),
                     STOP_RESULT);
    ck_assert_int_eq(store_scan_object_texts(test_store, "Task", NULL, false, record_object_text,
                                             &texts),
                     STOP_RESULT);
    json_t *expected = int_array(0, 20, 10);
    ck_assert(json_equal(record.ids, expected));
    ck_assert(json_equal(texts.ids, expected));
    json_decref(expected);
    free_scan_record(&texts);
    free_scan_record(&record);
}
END_TEST

START_TEST(test_scan_errors)
{
    put_tens();
    scan_record record = new_scan_record(0);
    ck_assert_int_eq(store_scan_objects(test_store, "Missing", NULL, false, record_object, &record),
                     -ENOENT);
    assert_error_mentions("Missing");
    ck_assert_int_eq(store_scan_object_texts(test_store, "Missing", NULL, false,
                                             record_object_text, &record),
                     -ENOENT);
    assert_error_mentions("Missing");
    static const uint8_t unknown_tag[] = {0x09, 0x01};
    store_object_view corrupt = {.stored_id = unknown_tag, .stored_id_size = sizeof unknown_tag};
    json_t *id = NULL;
    ck_assert_int_eq(store_object_view_id(&corrupt, &id), -EIO);
    ck_assert_ptr_null(id);
    assert_error_mentions("corrupt object key");
    json_t *bad_start = json_real(1.0);
    ck_assert_int_eq(store_scan_objects(test_store, "Task", bad_start, false, record_object, &record),
                     -EINVAL);
    ck_assert_uint_eq(json_array_size(record.ids), 0);
    json_decref(bad_start);
    free_scan_record(&record);
}
END_TEST

/* Reads inside a visit run a second read transaction in the same thread
 * while the scan's is open. */
static int read_visited_object(const store_object_view *object, void *context)
{
    char *text = NULL;
    int result = store_get_object(test_store, "Task", object->id, &text, NULL);
    if (result == 0 && (strlen(text) != object->info.size
                        || memcmp(text, object->text, object->info.size) != 0))
        result = -EBADMSG;
    free(text);
    (*(int *)context)++;
    return result;
}

START_TEST(test_visit_may_read_the_store)
{
    put_tens();
    int visited = 0;
    ck_assert_int_eq(store_scan_objects(test_store, "Task", NULL, false, read_visited_object,
                                        &visited), 0);
    ck_assert_int_eq(visited, 10);
}
END_TEST

START_TEST(test_collection_name_prefix_never_leaks)
{
    const char *names[] = { "Tas", "Task", "TaskList" };
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(store_create_collection(test_store, names[i]), 0);
    put_int_id("TaskList", 1, "list 1");
    put_int_id("TaskList", 2, "list 2");
    put_int_id("Task", 5, "task 5");

    json_t *task_ids = int_array(5, 5, 1);
    json_t *list_ids = int_array(1, 2, 1);
    json_t *nothing = json_array();
    assert_scan("Tas", NULL, false, nothing);
    assert_scan("Task", NULL, false, task_ids);
    assert_scan("TaskList", NULL, false, list_ids);
    ck_assert_uint_eq(count_objects("Tas"), 0);
    ck_assert_uint_eq(count_objects("Task"), 1);

    json_t *id = json_integer(1);
    assert_object_missing("Task", id);
    ck_assert_int_eq(store_drop_collection(test_store, "Tas"), 0);
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), -ENOTEMPTY);
    json_t *five = json_integer(5);
    ck_assert_int_eq(store_delete_object(test_store, "Task", five), 0);
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), 0);
    assert_scan("TaskList", NULL, false, list_ids);
    json_decref(five);
    json_decref(id);
    json_decref(task_ids);
    json_decref(list_ids);
    json_decref(nothing);
}
END_TEST

enum { MANY_OBJECTS = 10000, PAGE_SIZE = 1000 };

static void put_many_objects(void)
{
    ck_assert_int_eq(store_create_collection(test_store, "Many"), 0);
    for (int number = 0; number < MANY_OBJECTS; number++) {
        char name[32];
        snprintf(name, sizeof name, "object-%05d", number);
        json_t *id = json_string(name);
        put_text("Many", id, name);
        json_decref(id);
    }
}

static int count_visit(const store_object_view *object, void *context)
{
    (void)object;
    (*(uint64_t *)context)++;
    return 0;
}

START_TEST(test_scan_ten_thousand_objects)
{
    put_many_objects();
    ck_assert_uint_eq(count_objects("Many"), MANY_OBJECTS);
    uint64_t visited = 0;
    ck_assert_int_eq(store_scan_objects(test_store, "Many", NULL, false, count_visit, &visited), 0);
    ck_assert_uint_eq(visited, MANY_OBJECTS);
}
END_TEST

/* Lists the collection the way `ls` does: a page at a time, each page
 * resuming after the last id of the previous one. */
START_TEST(test_scan_resumed_page_by_page)
{
    put_many_objects();
    json_t *last_id = NULL;
    size_t total = 0;
    for (;;) {
        scan_record page = new_scan_record(PAGE_SIZE);
        int result = store_scan_objects(test_store, "Many", last_id, true, record_object, &page);
        ck_assert(result == 0 || result == STOP_RESULT);
        for (size_t i = 0; i < json_array_size(page.ids); i++) {
            char expected[32];
            snprintf(expected, sizeof expected, "object-%05zu", total + i);
            ck_assert_str_eq(json_string_value(json_array_get(page.ids, i)), expected);
        }
        total += json_array_size(page.ids);
        json_decref(last_id);
        last_id = json_array_size(page.ids) > 0
                      ? json_incref(json_array_get(page.ids, json_array_size(page.ids) - 1))
                      : NULL;
        free_scan_record(&page);
        if (result == 0)
            break;
    }
    json_decref(last_id);
    ck_assert_uint_eq(total, MANY_OBJECTS);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Schemas                                                             */

START_TEST(test_schemas)
{
    char *text = NULL;
    size_t size = 0;
    ck_assert_int_eq(store_get_schema(test_store, "Task", &text, &size), -ENOENT);
    assert_error_mentions("Task");
    ck_assert_int_eq(store_put_schema(test_store, "Task", "{\"title\": 1}", 12), 0);
    ck_assert_int_eq(store_put_schema(test_store, "Alpha", "{}", 2), 0);
    ck_assert_int_eq(store_put_schema(test_store, "Task", "{\"title\": 2}", 12), 0);
    ck_assert_int_eq(store_get_schema(test_store, "Task", &text, &size), 0);
    ck_assert_uint_eq(size, 12);
    ck_assert_str_eq(text, "{\"title\": 2}");
    free(text);
    assert_names(store_list_schemas, "[\"Alpha\", \"Task\"]");

    ck_assert_int_eq(store_delete_schema(test_store, "Task"), 0);
    ck_assert_int_eq(store_delete_schema(test_store, "Task"), -ENOENT);
    assert_names(store_list_schemas, "[\"Alpha\"]");
}
END_TEST

START_TEST(test_schemas_are_independent_of_collections)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_put_schema(test_store, "Task", "{}", 2), 0);
    ck_assert_int_eq(store_drop_collection(test_store, "Task"), 0);
    char *text = NULL;
    ck_assert_int_eq(store_get_schema(test_store, "Task", &text, NULL), 0);
    ck_assert_str_eq(text, "{}");
    free(text);
    assert_names(store_list_collections, "[]");
}
END_TEST

/* ------------------------------------------------------------------ */
/* The store as a whole                                                */

START_TEST(test_persists_across_reopen)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    ck_assert_int_eq(store_put_schema(test_store, "Task", "{}", 2), 0);
    json_t *id = json_integer(1);
    uint64_t version = put_text("Task", id, "kept");
    ck_assert_int_eq(store_sync(test_store), 0);

    reopen_test_store(NULL);
    assert_object_text("Task", id, "kept");
    ck_assert_int_eq(store_has_collection(test_store, "Task"), 1);
    assert_names(store_list_schemas, "[\"Task\"]");
    ck_assert_uint_gt(put_text("Task", id, "again"), version);

    store_options read_only = { .read_only = true };
    reopen_test_store(&read_only);
    assert_object_text("Task", id, "again");
    json_decref(id);
}
END_TEST

/* Runs in a child process, which may open the store's environment while
 * the parent holds it; returns the number of the first failed check. */
static int check_read_only_view(const char *directory)
{
    store_options options = { .read_only = true };
    store *reader = NULL;
    if (store_open(directory, &options, &reader) != 0)
        return 1;
    json_t *id = json_integer(1);
    char *text = NULL;
    uint64_t count = 0;
    int failed = 0;
    if (store_get_object(reader, "Task", id, &text, NULL) != 0 || strcmp(text, "written") != 0)
        failed = 2;
    else if (store_count_objects(reader, "Task", &count) != 0 || count != 1)
        failed = 3;
    else if (store_put_object(reader, "Task", id, "x", 1, 0, NULL) != -EROFS
             || strstr(store_last_error(), "read-only") == NULL)
        failed = 4;
    else if (store_create_collection(reader, "Other") != -EROFS)
        failed = 5;
    else if (store_put_schema(reader, "Task", "{}", 2) != -EROFS)
        failed = 6;
    else if (store_sync(reader) != 0)
        failed = 7;
    free(text);
    json_decref(id);
    store_close(reader);
    return failed;
}

START_TEST(test_read_only_open_sees_writes_of_another_process)
{
    ck_assert_int_eq(store_create_collection(test_store, "Task"), 0);
    put_int_id("Task", 1, "written");
    pid_t child = fork();
    ck_assert_int_ne(child, -1);
    if (child == 0)
        _exit(check_read_only_view(store_directory));
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status));
    ck_assert_msg(WEXITSTATUS(status) == 0, "read-only check %d failed", WEXITSTATUS(status));
    put_int_id("Task", 2, "still writable");
}
END_TEST

START_TEST(test_read_only_open_of_missing_store)
{
    char missing[PATH_MAX];
    join_path(missing, test_directory, "missing");
    store_options options = { .read_only = true };
    store *reader = NULL;
    ck_assert_int_eq(store_open(missing, &options, &reader), -ENOENT);
    assert_error_mentions(missing);
    struct stat status;
    ck_assert_int_eq(stat(missing, &status), -1);
}
END_TEST

START_TEST(test_statistics)
{
    put_many_objects();
    store_statistics statistics;
    ck_assert_int_eq(store_get_statistics(test_store, &statistics), 0);
    ck_assert_uint_gt(statistics.file_bytes, 0);
    ck_assert_uint_gt(statistics.used_bytes, (uint64_t)MANY_OBJECTS * 10);
    ck_assert_uint_le(statistics.used_bytes, statistics.file_bytes);
}
END_TEST

START_TEST(test_full_store_reports_enospc_and_recovers)
{
    char directory[PATH_MAX];
    join_path(directory, test_directory, "small");
    store_options options = { .map_size = 1 << 20 };
    store *small = NULL;
    ck_assert_int_eq(store_open(directory, &options, &small), 0);
    ck_assert_int_eq(store_create_collection(small, "Big"), 0);
    static char text[64 * 1024];
    memset(text, 'x', sizeof text);
    int result = 0;
    json_int_t number;
    for (number = 0; number < 100 && result == 0; number++) {
        json_t *id = json_integer(number);
        result = store_put_object(small, "Big", id, text, sizeof text, 0, NULL);
        json_decref(id);
    }
    ck_assert_int_eq(result, -ENOSPC);
    ck_assert_msg(strstr(store_last_error(), "full") != NULL, "%s", store_last_error());
    assert_error_mentions("Big");

    /* A rename that runs out of space after deleting the old id must
     * leave the old object in place. */
    static char larger[512 * 1024];
    json_t *first = json_integer(0);
    json_t *renamed = json_integer(1000);
    ck_assert_int_eq(store_rename_object(small, "Big", first, renamed, larger, sizeof larger, 0, NULL),
                     -ENOSPC);
    char *kept = NULL;
    ck_assert_int_eq(store_get_object(small, "Big", first, &kept, NULL), 0);
    free(kept);
    ck_assert_int_eq(store_get_object(small, "Big", renamed, NULL, NULL), -ENOENT);
    json_decref(renamed);

    ck_assert_int_eq(store_delete_object(small, "Big", first), 0);
    ck_assert_int_eq(store_put_object(small, "Big", first, "{}", 2, 0, NULL), 0);
    json_decref(first);
    store_close(small);
}
END_TEST

/* Several threads write and read at once: writes must all land, and every
 * reader must see a consistent, never shrinking count. */
enum { WRITER_THREADS = 4, READER_THREADS = 2, WRITES_PER_THREAD = 250 };

static void *write_objects(void *argument)
{
    intptr_t thread = (intptr_t)argument;
    for (int i = 0; i < WRITES_PER_THREAD; i++) {
        json_t *id = json_integer(thread * WRITES_PER_THREAD + i);
        int result = store_put_object(test_store, "Shared", id, "{}", 2, 0, NULL);
        json_decref(id);
        if (result != 0)
            return (void *)1;
    }
    return NULL;
}

static void *read_objects(void *argument)
{
    (void)argument;
    uint64_t previous = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t scanned = 0, counted = 0;
        if (store_scan_objects(test_store, "Shared", NULL, false, count_visit, &scanned) != 0
            || store_count_objects(test_store, "Shared", &counted) != 0
            || scanned < previous || counted < scanned)
            return (void *)1;
        previous = scanned;
    }
    return NULL;
}

START_TEST(test_concurrent_writers_and_readers)
{
    ck_assert_int_eq(store_create_collection(test_store, "Shared"), 0);
    pthread_t threads[WRITER_THREADS + READER_THREADS];
    for (intptr_t i = 0; i < WRITER_THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, write_objects, (void *)i), 0);
    for (int i = WRITER_THREADS; i < WRITER_THREADS + READER_THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, read_objects, NULL), 0);
    for (int i = 0; i < WRITER_THREADS + READER_THREADS; i++) {
        void *failed;
        ck_assert_int_eq(pthread_join(threads[i], &failed), 0);
        ck_assert_msg(failed == NULL, "thread %d failed", i);
    }
    ck_assert_uint_eq(count_objects("Shared"), WRITER_THREADS * WRITES_PER_THREAD);
}
END_TEST

/* ------------------------------------------------------------------ */

static TCase *new_case(const char *name)
{
    TCase *test_case = tcase_create(name);
    tcase_add_unchecked_fixture(test_case, make_base_directory, remove_base_directory);
    tcase_add_checked_fixture(test_case, open_test_store, close_test_store);
    tcase_set_timeout(test_case, 120);
    return test_case;
}

Suite *unit_suite(void)
{
    Suite *suite = suite_create("store");

    TCase *collections = new_case("collections");
    tcase_add_test(collections, test_create_and_drop_collection);
    tcase_add_test(collections, test_drop_refuses_collection_with_objects);
    tcase_add_test(collections, test_object_counts_follow_every_write);
    tcase_add_test(collections, test_list_collections_in_byte_order);
    tcase_add_test(collections, test_collection_names_are_validated);
    suite_add_tcase(suite, collections);

    TCase *objects = new_case("objects");
    tcase_add_test(objects, test_object_with_int_id);
    tcase_add_test(objects, test_object_with_object_id);
    tcase_add_test(objects, test_object_with_string_id_holding_nul);
    tcase_add_test(objects, test_empty_object_text);
    tcase_add_test(objects, test_put_requires_collection);
    tcase_add_test(objects, test_ids_of_other_types_are_rejected);
    tcase_add_test(objects, test_long_string_ids);
    tcase_add_test(objects, test_versions_increase);
    tcase_add_test(objects, test_rename_object);
    tcase_add_test(objects, test_rename_onto_existing_object);
    tcase_add_test(objects, test_rename_missing_object_changes_nothing);
    suite_add_tcase(suite, objects);

    TCase *scans = new_case("scans");
    tcase_add_test(scans, test_ids_are_ordered_by_type_then_value);
    tcase_add_test(scans, test_scan_from_start);
    tcase_add_test(scans, test_scan_from_middle);
    tcase_add_test(scans, test_scan_stops_when_visit_returns_non_zero);
    tcase_add_test(scans, test_scan_errors);
    tcase_add_test(scans, test_visit_may_read_the_store);
    tcase_add_test(scans, test_collection_name_prefix_never_leaks);
    tcase_add_test(scans, test_scan_ten_thousand_objects);
    tcase_add_test(scans, test_scan_resumed_page_by_page);
    suite_add_tcase(suite, scans);

    TCase *schemas = new_case("schemas");
    tcase_add_test(schemas, test_schemas);
    tcase_add_test(schemas, test_schemas_are_independent_of_collections);
    suite_add_tcase(suite, schemas);

    TCase *whole_store = new_case("whole store");
    tcase_add_test(whole_store, test_persists_across_reopen);
    tcase_add_test(whole_store, test_read_only_open_sees_writes_of_another_process);
    tcase_add_test(whole_store, test_read_only_open_of_missing_store);
    tcase_add_test(whole_store, test_statistics);
    tcase_add_test(whole_store, test_full_store_reports_enospc_and_recovers);
    tcase_add_test(whole_store, test_concurrent_writers_and_readers);
    suite_add_tcase(suite, whole_store);

    return suite;
}

/*
 * Unit tests for changeset.c: each merge rule with exact documents, diffs
 * applied back onto their old document, the JSON forms of changesets and
 * states with their error messages, and a property test that applies
 * random concurrent changesets in many orders and checks that every order
 * gives the same bytes, and the document a replay in clock order gives.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/changeset.h"
#include "realmfs/ejson.h"
#include "realmfs/value.h"

#define TEST_COLLECTION "Task"

/* xorshift64*: reproducible random tests without shared state. */
typedef struct test_random {
    uint64_t state;
} test_random;

static uint64_t test_random_next(test_random *random)
{
    random->state ^= random->state >> 12;
    random->state ^= random->state << 25;
    random->state ^= random->state >> 27;
    return random->state * UINT64_C(2685821657736338717);
}

static size_t test_random_below(test_random *random, size_t bound)
{
    return (size_t)(test_random_next(random) % bound);
}

static test_random test_random_seeded(uint64_t seed)
{
    return (test_random){.state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1};
}

/* Swaps single quotes for double quotes, so that test JSON reads easily;
 * test texts must not hold a quote of their own.  malloc'd. */
static char *double_quoted(const char *text)
{
    char *converted = strdup(text);
    ck_assert_ptr_nonnull(converted);
    for (char *c = converted; *c != '\0'; c++) {
        if (*c == '\'')
            *c = '"';
    }
    return converted;
}

/* Raw JSON, as it would come from the network. */
static json_t *load(const char *text)
{
    char *converted = double_quoted(text);
    json_error_t error;
    json_t *value = json_loads(converted, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    ck_assert_msg(value != NULL, "bad test JSON %s: %s", text, error.text);
    free(converted);
    return value;
}

/* A normalized value. */
static json_t *value_of(const char *text)
{
    json_t *raw = load(text);
    ejson_error error;
    json_t *value = ejson_normalize(raw, &error);
    ck_assert_msg(value != NULL, "bad test value %s: %s", text, error.message);
    json_decref(raw);
    return value;
}

/* The one-line Extended JSON of a value, or "(absent)" for NULL; malloc'd. */
static char *line_of(const json_t *value)
{
    char *text = value ? ejson_format_line(value, NULL) : strdup("(absent)");
    ck_assert_ptr_nonnull(text);
    return text;
}

static char *pretty_of(const json_t *value)
{
    char *text = value ? ejson_format_pretty(value, NULL) : strdup("(absent)");
    ck_assert_ptr_nonnull(text);
    return text;
}

static changeset_clock at(int64_t timestamp, uint64_t origin, uint32_t sequence)
{
    return (changeset_clock){.timestamp = timestamp, .origin = origin, .sequence = sequence};
}

static json_t *document_of(const object_state *state)
{
    json_t *document;
    ck_assert_int_eq(object_state_document(state, &document), 0);
    return document;
}

/* expected is single-quoted one-line Extended JSON, or NULL: absent. */
static void assert_document(const object_state *state, const char *expected)
{
    json_t *document = document_of(state);
    char *actual = line_of(document);
    char *wanted = expected ? double_quoted(expected) : strdup("(absent)");
    ck_assert_str_eq(actual, wanted);
    free(wanted);
    free(actual);
    json_decref(document);
}

/* One instruction on object 1 of Task, with its clock. */
typedef struct test_step {
    changeset_operation operation;
    const char *path;
    const char *value; /* single-quoted Extended JSON, or NULL */
    changeset_clock clock;
} test_step;

typedef int (*state_function)(object_state *state, const changeset_instruction *instruction,
                              const changeset_clock *clock);

static int run_step(state_function function, object_state *state, const test_step *step)
{
    json_t *value = step->value ? value_of(step->value) : NULL;
    changeset_instruction instruction = {
        .operation = step->operation,
        .collection = TEST_COLLECTION,
        .id = (json_t *)object_state_id(state),
        .path = (char *)step->path,
        .value = value,
    };
    int result = function(state, &instruction, &step->clock);
    json_decref(value);
    return result;
}

static int apply_step(object_state *state, const test_step *step)
{
    return run_step(object_state_apply, state, step);
}

static object_state *new_state(void)
{
    json_t *id = json_integer(1);
    object_state *state = object_state_new(id);
    ck_assert_ptr_nonnull(state);
    json_decref(id);
    return state;
}

static char *state_text(const object_state *state)
{
    json_t *json = object_state_to_json(state);
    ck_assert_ptr_nonnull(json);
    char *text = json_dumps(json, JSON_COMPACT);
    ck_assert_ptr_nonnull(text);
    json_decref(json);
    return text;
}

static void apply_in_order(const test_step *steps, const size_t *order, size_t count,
                           const char *expected, char **first_state)
{
    object_state *state = new_state();
    for (size_t i = 0; i < count; i++)
        ck_assert_int_ge(apply_step(state, &steps[order[i]]), 0);
    assert_document(state, expected);
    char *text = state_text(state);
    if (*first_state) {
        ck_assert_str_eq(text, *first_state);
        free(text);
    } else {
        *first_state = text;
    }
    object_state_free(state);
}

/* Heap's algorithm over order[0..size). */
static void apply_permutations(const test_step *steps, size_t *order, size_t size, size_t count,
                               const char *expected, char **first_state)
{
    if (size <= 1) {
        apply_in_order(steps, order, count, expected, first_state);
        return;
    }
    for (size_t i = 0; i < size; i++) {
        apply_permutations(steps, order, size - 1, count, expected, first_state);
        size_t swap_with = size % 2 == 0 ? i : 0;
        size_t kept = order[swap_with];
        order[swap_with] = order[size - 1];
        order[size - 1] = kept;
    }
}

/* Every arrival order of the steps gives expected and one same state. */
static void assert_all_orders(const test_step *steps, size_t count, const char *expected)
{
    ck_assert_uint_le(count, 7);
    size_t order[7];
    for (size_t i = 0; i < count; i++)
        order[i] = i;
    char *first_state = NULL;
    apply_permutations(steps, order, count, count, expected, &first_state);
    free(first_state);
}

#define STEPS_COUNT(steps) (sizeof(steps) / sizeof(steps)[0])

/* ------------------------------------------------------------------------ */
/* The merge rules                                                           */

START_TEST(test_last_writer_wins_by_timestamp)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(50, 1, 0)},
        {CHANGESET_SET, "title", "'older'", at(100, 9, 0)},
        {CHANGESET_SET, "title", "'newer'", at(200, 2, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'title': 'newer'}");
}
END_TEST

START_TEST(test_equal_timestamps_go_by_origin)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(50, 1, 0)},
        {CHANGESET_SET, "title", "'from 3'", at(100, 3, 0)},
        {CHANGESET_SET, "title", "'from 2'", at(100, 2, 5)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'title': 'from 3'}");
}
END_TEST

START_TEST(test_equal_origins_go_by_sequence)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(50, 1, 0)},
        {CHANGESET_SET, "title", "'second'", at(100, 2, 2)},
        {CHANGESET_SET, "title", "'first'", at(100, 2, 1)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'title': 'second'}");
}
END_TEST

START_TEST(test_delete_wins_over_concurrent_later_updates)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(50, 1, 0)},
        {CHANGESET_SET, "title", "'a'", at(50, 1, 1)},
        {CHANGESET_DELETE, NULL, NULL, at(100, 2, 0)},
        {CHANGESET_SET, "title", "'late'", at(150, 3, 0)},
        {CHANGESET_SET, "notes", "'late too'", at(160, 3, 1)},
        {CHANGESET_UNSET, "title", NULL, at(170, 4, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), NULL);
}
END_TEST

START_TEST(test_create_after_delete_is_a_fresh_object)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(50, 1, 0)},
        {CHANGESET_SET, "title", "'old'", at(50, 1, 1)},
        {CHANGESET_SET, "notes", "'old notes'", at(50, 1, 2)},
        {CHANGESET_DELETE, NULL, NULL, at(100, 2, 0)},
        {CHANGESET_SET, "notes", "'on the deleted object'", at(120, 3, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(200, 2, 0)},
        {CHANGESET_SET, "title", "'fresh'", at(200, 2, 1)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'title': 'fresh'}");
}
END_TEST

START_TEST(test_two_creates_are_one_object)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(100, 1, 0)},
        {CHANGESET_SET, "title", "'from 1'", at(100, 1, 1)},
        {CHANGESET_SET, "done", "false", at(100, 1, 2)},
        {CHANGESET_CREATE, NULL, NULL, at(110, 2, 0)},
        {CHANGESET_SET, "done", "true", at(110, 2, 1)},
        {CHANGESET_SET, "owner", "'ana'", at(110, 2, 2)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps),
                      "{'_id': 1, 'title': 'from 1', 'done': true, 'owner': 'ana'}");
}
END_TEST

START_TEST(test_embedded_objects_merge_field_by_field)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "address.street", "'Main St'", at(90, 3, 0)},
        {CHANGESET_SET, "address.city", "'Paris'", at(100, 1, 0)},
        {CHANGESET_SET, "address.zip", "'75001'", at(100, 2, 0)},
        {CHANGESET_SET, "address.city", "'Lyon'", at(120, 2, 1)},
        {CHANGESET_SET, "address.geo.lat", "48.8", at(130, 1, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps),
                      "{'_id': 1, 'address': {'street': 'Main St', 'city': 'Lyon', "
                      "'zip': '75001', 'geo': {'lat': 48.8}}}");
}
END_TEST

START_TEST(test_arrays_are_replaced_whole)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "tags", "['a', 'b']", at(100, 1, 0)},
        {CHANGESET_SET, "tags", "['c']", at(200, 2, 0)},
        {CHANGESET_SET, "items", "[{'name': 'x', 'qty': 1}]", at(300, 2, 0)},
        {CHANGESET_SET, "items", "[{'name': 'y'}, {'name': 'z'}]", at(250, 1, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps),
                      "{'_id': 1, 'tags': ['c'], 'items': [{'name': 'x', 'qty': 1}]}");
}
END_TEST

START_TEST(test_unsets_are_last_writer_wins_too)
{
    const test_step unset_last[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "title", "'a'", at(100, 1, 0)},
        {CHANGESET_UNSET, "title", NULL, at(200, 2, 0)},
        {CHANGESET_SET, "done", "true", at(100, 1, 1)},
    };
    assert_all_orders(unset_last, STEPS_COUNT(unset_last), "{'_id': 1, 'done': true}");

    const test_step set_last[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_UNSET, "title", NULL, at(100, 2, 0)},
        {CHANGESET_SET, "title", "'b'", at(200, 1, 0)},
    };
    assert_all_orders(set_last, STEPS_COUNT(set_last), "{'_id': 1, 'title': 'b'}");
}
END_TEST

START_TEST(test_later_field_under_a_value_makes_a_document)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "address.zip", "'older than the string'", at(50, 3, 0)},
        {CHANGESET_SET, "address", "'none'", at(100, 1, 0)},
        {CHANGESET_SET, "address.city", "'Paris'", at(200, 2, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'address': {'city': 'Paris'}}");
}
END_TEST

START_TEST(test_later_value_replaces_a_document)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "address.city", "'Paris'", at(100, 1, 0)},
        {CHANGESET_SET, "address.zip", "'75001'", at(150, 2, 0)},
        {CHANGESET_SET, "address", "'none'", at(200, 2, 1)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'address': 'none'}");

    const test_step unset_prefix[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "address.city", "'Paris'", at(100, 1, 0)},
        {CHANGESET_UNSET, "address", NULL, at(200, 2, 0)},
        {CHANGESET_SET, "title", "'t'", at(300, 2, 0)},
    };
    assert_all_orders(unset_prefix, STEPS_COUNT(unset_prefix), "{'_id': 1, 'title': 't'}");
}
END_TEST

START_TEST(test_prefix_conflicts_chain)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "a.b.c", "1", at(100, 1, 0)},
        {CHANGESET_SET, "a.b", "2", at(200, 2, 0)},
        {CHANGESET_SET, "a.b.d", "3", at(300, 3, 0)},
        {CHANGESET_SET, "a.e", "4", at(150, 4, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'a': {'b': {'d': 3}, 'e': 4}}");
}
END_TEST

/* An unset under a path says the path is a document without that field. */
START_TEST(test_unset_under_a_value_leaves_an_empty_document)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "a", "'x'", at(100, 1, 0)},
        {CHANGESET_UNSET, "a.b", NULL, at(200, 2, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'a': {}}");

    const test_step deeper[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "a", "'x'", at(100, 1, 0)},
        {CHANGESET_SET, "a.b.c", "1", at(200, 2, 0)},
        {CHANGESET_UNSET, "a.b", NULL, at(300, 3, 0)},
    };
    assert_all_orders(deeper, STEPS_COUNT(deeper), "{'_id': 1, 'a': {}}");
}
END_TEST

START_TEST(test_empty_document_values)
{
    const test_step replaces[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "a.b", "1", at(100, 1, 0)},
        {CHANGESET_SET, "a", "{}", at(200, 2, 0)},
    };
    assert_all_orders(replaces, STEPS_COUNT(replaces), "{'_id': 1, 'a': {}}");

    const test_step filled[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "a", "{}", at(100, 1, 0)},
        {CHANGESET_SET, "a.b", "1", at(200, 2, 0)},
    };
    assert_all_orders(filled, STEPS_COUNT(filled), "{'_id': 1, 'a': {'b': 1}}");
}
END_TEST

START_TEST(test_writes_count_only_while_the_object_lives)
{
    const test_step no_create[] = {
        {CHANGESET_SET, "title", "'a'", at(100, 1, 0)},
    };
    assert_all_orders(no_create, STEPS_COUNT(no_create), NULL);

    const test_step earlier_create[] = {
        {CHANGESET_SET, "title", "'a'", at(100, 1, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(50, 2, 0)},
    };
    assert_all_orders(earlier_create, STEPS_COUNT(earlier_create), "{'_id': 1, 'title': 'a'}");

    const test_step later_create[] = {
        {CHANGESET_SET, "title", "'a'", at(100, 1, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(150, 2, 0)},
    };
    assert_all_orders(later_create, STEPS_COUNT(later_create), "{'_id': 1}");

    /* A create between the delete and a later create starts the life. */
    const test_step between[] = {
        {CHANGESET_DELETE, NULL, NULL, at(100, 1, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(300, 2, 0)},
        {CHANGESET_SET, "title", "'counted'", at(250, 3, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(200, 4, 0)},
        {CHANGESET_SET, "notes", "'before any life'", at(150, 3, 0)},
    };
    assert_all_orders(between, STEPS_COUNT(between), "{'_id': 1, 'title': 'counted'}");
}
END_TEST

/* An origin that reuses a clock breaks the contract; the merge must still
 * converge. */
START_TEST(test_equal_clocks_still_converge)
{
    const test_step values[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "title", "'a'", at(100, 1, 1)},
        {CHANGESET_SET, "title", "'b'", at(100, 1, 1)},
    };
    assert_all_orders(values, STEPS_COUNT(values), "{'_id': 1, 'title': 'b'}");

    const test_step set_and_unset[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_UNSET, "title", NULL, at(100, 1, 1)},
        {CHANGESET_SET, "title", "1", at(100, 1, 1)},
    };
    assert_all_orders(set_and_unset, STEPS_COUNT(set_and_unset), "{'_id': 1, 'title': 1}");

    const test_step create_and_delete[] = {
        {CHANGESET_CREATE, NULL, NULL, at(100, 1, 0)},
        {CHANGESET_DELETE, NULL, NULL, at(100, 1, 0)},
    };
    assert_all_orders(create_and_delete, STEPS_COUNT(create_and_delete), NULL);
}
END_TEST

START_TEST(test_field_order_follows_first_writes)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "b", "1", at(10, 1, 2)},
        {CHANGESET_SET, "a", "1", at(10, 1, 1)},
        {CHANGESET_SET, "c", "1", at(10, 1, 3)},
        {CHANGESET_SET, "a", "2", at(20, 1, 0)},
        {CHANGESET_UNSET, "b", NULL, at(30, 1, 0)},
        {CHANGESET_SET, "b", "3", at(40, 1, 0)},
    };
    assert_all_orders(steps, STEPS_COUNT(steps), "{'_id': 1, 'a': 2, 'b': 3, 'c': 1}");

    const test_step equal_firsts[] = {
        {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)},
        {CHANGESET_SET, "y", "1", at(20, 1, 0)},
        {CHANGESET_SET, "x", "1", at(20, 1, 0)},
    };
    assert_all_orders(equal_firsts, STEPS_COUNT(equal_firsts), "{'_id': 1, 'x': 1, 'y': 1}");
}
END_TEST

START_TEST(test_apply_says_when_the_document_changed)
{
    object_state *state = new_state();
    test_step set_b = {CHANGESET_SET, "b", "1", at(10, 1, 1)};
    ck_assert_int_eq(apply_step(state, &set_b), 0); /* not created yet */
    test_step create = {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)};
    ck_assert_int_eq(apply_step(state, &create), 1);
    ck_assert_int_eq(apply_step(state, &create), 0);
    test_step set_a = {CHANGESET_SET, "a", "2", at(20, 1, 0)};
    ck_assert_int_eq(apply_step(state, &set_a), 1);
    ck_assert_int_eq(apply_step(state, &set_a), 0);
    assert_document(state, "{'_id': 1, 'b': 1, 'a': 2}");
    /* Loses to a's register but moves a first: a change of field order. */
    test_step older_a = {CHANGESET_SET, "a", "3", at(5, 1, 0)};
    ck_assert_int_eq(apply_step(state, &older_a), 1);
    assert_document(state, "{'_id': 1, 'a': 2, 'b': 1}");
    test_step older_b = {CHANGESET_SET, "b", "0", at(4, 1, 0)};
    ck_assert_int_eq(apply_step(state, &older_b), 1);
    assert_document(state, "{'_id': 1, 'b': 1, 'a': 2}");
    test_step same_b = {CHANGESET_SET, "b", "0", at(6, 1, 0)};
    ck_assert_int_eq(apply_step(state, &same_b), 0);
    test_step delete = {CHANGESET_DELETE, NULL, NULL, at(30, 1, 0)};
    ck_assert_int_eq(apply_step(state, &delete), 1);
    ck_assert_int_eq(apply_step(state, &delete), 0);
    object_state_free(state);
}
END_TEST

/* The join alone says whether the state took the instruction, even when
 * the document does not change. */
START_TEST(test_join_says_when_the_state_changed)
{
    object_state *state = new_state();
    test_step set_b = {CHANGESET_SET, "b", "1", at(10, 1, 1)};
    ck_assert_int_eq(run_step(object_state_join_instruction, state, &set_b), 1);
    ck_assert_int_eq(run_step(object_state_join_instruction, state, &set_b), 0);
    test_step create = {CHANGESET_CREATE, NULL, NULL, at(10, 1, 0)};
    ck_assert_int_eq(run_step(object_state_join_instruction, state, &create), 1);
    test_step older_b = {CHANGESET_SET, "b", "0", at(4, 1, 0)};
    ck_assert_int_eq(run_step(object_state_join_instruction, state, &older_b), 1);
    assert_document(state, "{'_id': 1, 'b': 1}");
    test_step bad_clock = {CHANGESET_SET, "b", "0", at(-1, 1, 0)};
    ck_assert_int_eq(run_step(object_state_join_instruction, state, &bad_clock), -EINVAL);
    object_state_free(state);
}
END_TEST

START_TEST(test_apply_refuses_bad_instructions)
{
    object_state *state = new_state();
    json_t *other_id = json_integer(2);
    changeset_instruction instruction = {
        .operation = CHANGESET_CREATE, .collection = TEST_COLLECTION, .id = other_id};
    changeset_clock clock = at(1, 1, 0);
    ck_assert_int_eq(object_state_apply(state, &instruction, &clock), -EINVAL);
    json_decref(other_id);

    test_step negative_time = {CHANGESET_CREATE, NULL, NULL, at(-1, 1, 0)};
    ck_assert_int_eq(apply_step(state, &negative_time), -EINVAL);
    test_step huge_origin = {CHANGESET_CREATE, NULL, NULL, at(1, UINT64_MAX, 0)};
    ck_assert_int_eq(apply_step(state, &huge_origin), -EINVAL);
    test_step dollar = {CHANGESET_SET, "a.$b", "1", at(1, 1, 0)};
    ck_assert_int_eq(apply_step(state, &dollar), -EINVAL);
    test_step id = {CHANGESET_UNSET, "_id", NULL, at(1, 1, 0)};
    ck_assert_int_eq(apply_step(state, &id), -EINVAL);
    test_step document = {CHANGESET_SET, "a", "{'b': 1}", at(1, 1, 0)};
    ck_assert_int_eq(apply_step(state, &document), -EINVAL);
    test_step no_value = {CHANGESET_SET, "a", NULL, at(1, 1, 0)};
    ck_assert_int_eq(apply_step(state, &no_value), -EINVAL);
    test_step create_with_path = {CHANGESET_CREATE, "a", NULL, at(1, 1, 0)};
    ck_assert_int_eq(apply_step(state, &create_with_path), -EINVAL);
    assert_document(state, NULL);
    object_state_free(state);

    json_t *double_id = json_real(1.5);
    ck_assert_ptr_null(object_state_new(double_id));
    json_decref(double_id);
}
END_TEST

START_TEST(test_clock_compare)
{
    changeset_clock a = at(1, 2, 3);
    changeset_clock later_time = at(2, 0, 0);
    changeset_clock later_origin = at(1, 3, 0);
    changeset_clock later_sequence = at(1, 2, 4);
    ck_assert_int_lt(changeset_clock_compare(&a, &later_time), 0);
    ck_assert_int_lt(changeset_clock_compare(&a, &later_origin), 0);
    ck_assert_int_lt(changeset_clock_compare(&a, &later_sequence), 0);
    ck_assert_int_gt(changeset_clock_compare(&later_time, &a), 0);
    ck_assert_int_eq(changeset_clock_compare(&a, &a), 0);

    changeset changeset = {.origin = 7, .timestamp = 1000};
    changeset_clock clock = changeset_instruction_clock(&changeset, 4);
    changeset_clock expected = at(1000, 7, 4);
    ck_assert_int_eq(changeset_clock_compare(&clock, &expected), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Diffs                                                                     */

/* The diff's instructions as JSON, for comparison with a test text. */
static json_t *diff_instructions(const char *old_text, const char *new_text)
{
    json_t *old_document = old_text ? value_of(old_text) : NULL;
    json_t *new_document = new_text ? value_of(new_text) : NULL;
    json_t *id = json_integer(1);
    changeset changeset = {.origin = 1, .timestamp = 1};
    char message[256];
    int result = changeset_diff(TEST_COLLECTION, id, old_document, new_document, &changeset,
                                message, sizeof message);
    ck_assert_msg(result == 0, "%s", message);
    json_t *json = changeset_to_json(&changeset);
    ck_assert_ptr_nonnull(json);
    json_t *instructions = json_incref(json_object_get(json, "instructions"));
    json_decref(json);
    changeset_clear(&changeset);
    json_decref(id);
    json_decref(old_document);
    json_decref(new_document);
    return instructions;
}

static void assert_diff(const char *old_text, const char *new_text, const char *expected_text)
{
    json_t *instructions = diff_instructions(old_text, new_text);
    json_t *expected = load(expected_text);
    char *actual = json_dumps(instructions, JSON_COMPACT);
    ck_assert_msg(json_equal(instructions, expected), "diff of %s and %s gave %s", old_text,
                  new_text, actual);
    free(actual);
    json_decref(expected);
    json_decref(instructions);
}

START_TEST(test_diff_instructions)
{
    assert_diff(NULL, NULL, "[]");
    assert_diff("{'_id': 1, 'a': 1}", "{'_id': 1, 'a': 1}", "[]");
    assert_diff(NULL, "{'_id': 1, 'title': 't', 'address': {'city': 'P', 'geo': {}}}",
                "[{'op': 'create', 'collection': 'Task', 'id': 1},"
                " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'title', 'value': 't'},"
                " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'address.city',"
                "  'value': 'P'},"
                " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'address.geo',"
                "  'value': {}}]");
    assert_diff("{'_id': 1, 'a': 1}", NULL,
                "[{'op': 'delete', 'collection': 'Task', 'id': 1}]");
    assert_diff("{'_id': 1, 'a': 1, 'b': 2, 'c': 3}", "{'_id': 1, 'a': 1, 'b': 5, 'd': 4}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'b', 'value': 5},"
                " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'd', 'value': 4},"
                " {'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'c'}]");
    assert_diff("{'a': {'x': 1, 'y': 2}}", "{'a': {'x': 1, 'y': 3, 'z': [1]}}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a.y', 'value': 3},"
                " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a.z', 'value': [1]}]");
    assert_diff("{'a': 1}", "{'a': 1.0}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', 'value': 1.0}]");
    assert_diff("{'a': [{'x': 1, 'y': 2}]}", "{'a': [{'y': 2, 'x': 1}]}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a',"
                "  'value': [{'y': 2, 'x': 1}]}]");
    assert_diff("{'a': 'x'}", "{'a': {'b': {'c': 1}}}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a.b.c', 'value': 1}]");
    assert_diff("{'a': {'b': 1}}", "{'a': 'x'}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', 'value': 'x'}]");
    assert_diff("{'a': {'b': 1}}", "{'a': {}}",
                "[{'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a.b'}]");
    assert_diff("{'a': [1]}", "{'a': {}}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', 'value': {}}]");
    assert_diff("{'a': {'$date': 5}}", "{'a': {'$date': 6}}",
                "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a',"
                "  'value': {'$date': '1970-01-01T00:00:00.006Z'}}]");
    assert_diff("{'a': {'b': 1}}", "{}",
                "[{'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a'}]");
}
END_TEST

/* A state holding old_document, as the instructions that created it give. */
static object_state *state_holding(const json_t *id, const json_t *old_document,
                                   int64_t timestamp)
{
    object_state *state = object_state_new(id);
    ck_assert_ptr_nonnull(state);
    changeset changeset = {.origin = 1, .timestamp = timestamp};
    char message[256];
    ck_assert_msg(changeset_diff(TEST_COLLECTION, id, NULL, old_document, &changeset, message,
                                 sizeof message) == 0,
                  "%s", message);
    for (size_t i = 0; i < changeset.count; i++) {
        changeset_clock clock = changeset_instruction_clock(&changeset, i);
        ck_assert_int_ge(object_state_apply(state, &changeset.instructions[i], &clock), 0);
    }
    changeset_clear(&changeset);
    return state;
}

/* Applies the diff of old_document and new_document at timestamp and
 * checks that the state then shows new_document, byte for byte. */
static void apply_diff_and_check(object_state *state, const json_t *old_document,
                                 const json_t *new_document, int64_t timestamp)
{
    changeset changeset = {.origin = 2, .timestamp = timestamp};
    char message[256];
    ck_assert_msg(changeset_diff(TEST_COLLECTION, object_state_id(state), old_document,
                                 new_document, &changeset, message, sizeof message) == 0,
                  "%s", message);
    json_t *mirror = json_deep_copy(old_document);
    ck_assert_ptr_nonnull(mirror);
    for (size_t i = 0; i < changeset.count; i++) {
        changeset_clock clock = changeset_instruction_clock(&changeset, i);
        ck_assert_int_ge(object_state_apply(state, &changeset.instructions[i], &clock), 0);
        ck_assert_int_eq(changeset_replay(&changeset.instructions[i], &mirror), 0);
    }
    changeset_clear(&changeset);
    json_t *document = document_of(state);
    char *actual = pretty_of(document);
    char *replayed = pretty_of(mirror);
    char *expected = pretty_of(new_document);
    ck_assert_str_eq(actual, expected);
    ck_assert_str_eq(replayed, expected);
    free(actual);
    free(replayed);
    free(expected);
    json_decref(document);
    json_decref(mirror);
}

/* Replays instructions (a JSON array in the wire form) on start (NULL: no
 * object) and checks the outcome (NULL: no object). */
static void assert_replay(const char *start_text, const char *instructions_text,
                          const char *expected_text)
{
    json_t *document = start_text ? value_of(start_text) : NULL;
    json_t *raw = load(instructions_text);
    json_t *wire = json_pack("{s:i, s:i, s:i, s:O}", "origin", 1, "client_version", 1,
                             "timestamp", 1, "instructions", raw);
    changeset changeset;
    char message[256];
    ck_assert_msg(changeset_parse(wire, &changeset, message, sizeof message) == 0, "%s",
                  message);
    for (size_t i = 0; i < changeset.count; i++)
        ck_assert_int_eq(changeset_replay(&changeset.instructions[i], &document), 0);
    if (!expected_text) {
        ck_assert_ptr_null(document);
    } else {
        json_t *expected = value_of(expected_text);
        char *actual_pretty = pretty_of(document);
        char *expected_pretty = pretty_of(expected);
        ck_assert_str_eq(actual_pretty, expected_pretty);
        free(actual_pretty);
        free(expected_pretty);
        json_decref(expected);
    }
    changeset_clear(&changeset);
    json_decref(wire);
    json_decref(raw);
    json_decref(document);
}

START_TEST(test_replay_follows_instructions_in_order)
{
    assert_replay(NULL,
                  "[{'op': 'create', 'collection': 'Task', 'id': 1},"
                  " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', 'value': 1}]",
                  "{'_id': 1, 'a': 1}");
    assert_replay(NULL, "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', 'value': 1}]",
                  NULL);
    assert_replay("{'_id': 1, 'a': 1}", "[{'op': 'create', 'collection': 'Task', 'id': 1}]",
                  "{'_id': 1, 'a': 1}");
    assert_replay("{'_id': 1, 'a': 1}",
                  "[{'op': 'delete', 'collection': 'Task', 'id': 1},"
                  " {'op': 'create', 'collection': 'Task', 'id': 1},"
                  " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'b', 'value': 2}]",
                  "{'_id': 1, 'b': 2}");
    assert_replay("{'_id': 1, 'a': 'x', 'b': 1}",
                  "[{'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a.c.d', 'value': 5}]",
                  "{'_id': 1, 'a': {'c': {'d': 5}}, 'b': 1}");
    assert_replay("{'_id': 1, 'a': {'$date': 5}}",
                  "[{'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a.b'}]",
                  "{'_id': 1, 'a': {}}");
    assert_replay("{'_id': 1, 'a': 1, 'b': 2}",
                  "[{'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a'},"
                  " {'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', 'value': 3}]",
                  "{'_id': 1, 'b': 2, 'a': 3}");
    assert_replay("{'_id': 1}", "[{'op': 'delete', 'collection': 'Task', 'id': 1}]", NULL);
}
END_TEST

static void assert_diff_round_trip(const char *old_text, const char *new_text)
{
    json_t *id = json_integer(1);
    json_t *old_document = value_of(old_text);
    json_t *new_document = value_of(new_text);
    object_state *state = state_holding(id, old_document, 100);
    apply_diff_and_check(state, old_document, new_document, 200);
    object_state_free(state);
    json_decref(new_document);
    json_decref(old_document);
    json_decref(id);
}

START_TEST(test_diff_round_trips)
{
    static const char *const pairs[][2] = {
        {"{'_id': 1}", "{'_id': 1, 'a': 1}"},
        {"{'_id': 1, 'a': 1, 'b': 2}", "{'_id': 1, 'a': 1}"},
        {"{'_id': 1, 'a': 1, 'b': 2}", "{'_id': 1, 'b': 2}"},
        {"{'_id': 1, 'a': 1, 'b': 2}", "{'_id': 1, 'a': 'one', 'b': [2]}"},
        {"{'_id': 1, 'a': {'x': 1}}", "{'_id': 1, 'a': 'flat'}"},
        {"{'_id': 1, 'a': 'flat', 'b': 1}", "{'_id': 1, 'a': {'x': {'y': 1}}, 'b': 1}"},
        {"{'_id': 1, 'a': 'flat'}", "{'_id': 1, 'a': {}}"},
        {"{'_id': 1, 'a': {'x': 1}}", "{'_id': 1, 'a': {}}"},
        {"{'_id': 1, 'a': {}}", "{'_id': 1, 'a': {'x': 1}}"},
        {"{'_id': 1, 'a': {'x': {}}}", "{'_id': 1, 'a': {}}"},
        {"{'_id': 1, 'a': {'x': 1, 'y': 2}}", "{'_id': 1, 'a': {'x': 1, 'y': 2, 'z': 3}}"},
        {"{'_id': 1, 'a': [1, 2, 3]}", "{'_id': 1, 'a': [3, 2]}"},
        {"{'_id': 1, 'a': [{'k': 1}]}", "{'_id': 1, 'a': [{'k': 1}, {'k': 2}]}"},
        {"{'_id': 1, 'a': 1}", "{'_id': 1, 'a': 1.0}"},
        {"{'_id': 1, 'a': 0.0}", "{'_id': 1, 'a': -0.0}"},
        {"{'_id': 1, 'a': null}", "{'_id': 1, 'a': false}"},
        {"{'_id': 1, 'a': {'$numberDouble': 'NaN'}}",
         "{'_id': 1, 'a': {'$numberDouble': 'Infinity'}}"},
        {"{'_id': 1, 'a': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}}",
         "{'_id': 1, 'a': {'$uuid': '00112233-4455-6677-8899-aabbccddeeff'}}"},
        {"{'_id': 1, 'a': 9007199254740993}", "{'_id': 1, 'a': {'$numberDecimal': '1.10'}}"},
        {"{'_id': 1, 'a': {'$binary': {'base64': 'AQI=', 'subType': '00'}}}",
         "{'_id': 1, 'a': {'$date': -5}}"},
        {"{'_id': 1, 'a': {'b': {'c': {'d': 1}}}, 'e': 2}",
         "{'_id': 1, 'a': {'b': {'c': {'d': 2, 'f': 3}}}, 'e': 2, 'g': {'h': 1}}"},
        {"{'_id': 1, 'a': 1, 'b': 2, 'c': 3}", "{'_id': 1}"},
        {"{'_id': 1}", "{'_id': 1, 'x': {'y': {}}, 'z': []}"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        assert_diff_round_trip(pairs[i][0], pairs[i][1]);
}
END_TEST

/* Documents whose field names are all new, so that positions from earlier
 * lives of a field never come back (the round trip is then exact). */
typedef struct test_documents {
    test_random random;
    unsigned next_name;
} test_documents;

static json_t *random_document(test_documents *documents, int depth);

static json_t *random_scalar(test_documents *documents)
{
    static const char *const scalars[] = {
        "1", "-7", "2.5", "-0.0", "'text'", "''", "true", "false", "null",
        "{'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}", "{'$date': 1714560000000}",
        "{'$numberDecimal': '3.14'}", "{'$numberDouble': 'NaN'}", "9007199254740993",
    };
    return value_of(scalars[test_random_below(&documents->random, 14)]);
}

static json_t *random_value(test_documents *documents, int depth)
{
    size_t kind = test_random_below(&documents->random, depth > 0 ? 10 : 7);
    if (kind < 6)
        return random_scalar(documents);
    json_t *array = json_array();
    ck_assert_ptr_nonnull(array);
    if (kind == 6) {
        size_t size = test_random_below(&documents->random, 3);
        for (size_t i = 0; i < size; i++)
            ck_assert_int_eq(json_array_append_new(array, random_scalar(documents)), 0);
        return array;
    }
    if (kind == 7) {
        ck_assert_int_eq(json_array_append_new(array, random_document(documents, 0)), 0);
        return array;
    }
    json_decref(array);
    return random_document(documents, depth - 1);
}

static void add_random_field(test_documents *documents, json_t *document, int depth)
{
    char name[32];
    snprintf(name, sizeof name, "f%u", documents->next_name++);
    ck_assert_int_eq(json_object_set_new(document, name, random_value(documents, depth)), 0);
}

static json_t *random_document(test_documents *documents, int depth)
{
    json_t *document = json_object();
    ck_assert_ptr_nonnull(document);
    size_t size = test_random_below(&documents->random, 4);
    for (size_t i = 0; i < size; i++)
        add_random_field(documents, document, depth);
    return document;
}

/* old_document with fields dropped, replaced or changed inside, in their
 * order, and new fields after them. */
static json_t *mutated(test_documents *documents, const json_t *old_document, int depth)
{
    json_t *document = json_object();
    ck_assert_ptr_nonnull(document);
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)old_document, name, value) {
        size_t choice = test_random_below(&documents->random, 10);
        json_t *kept;
        if (strcmp(name, "_id") == 0 || choice < 4)
            kept = json_deep_copy(value);
        else if (choice < 6)
            continue;
        else if (choice < 8 || value_type_of(value) != VALUE_DOCUMENT)
            kept = random_value(documents, depth);
        else
            kept = mutated(documents, value, depth - 1);
        ck_assert_int_eq(json_object_set_new(document, name, kept), 0);
    }
    size_t added = test_random_below(&documents->random, 3);
    for (size_t i = 0; i < added; i++)
        add_random_field(documents, document, depth);
    return document;
}

START_TEST(test_diff_random_round_trips)
{
    for (uint64_t seed = 1; seed <= 300; seed++) {
        test_documents documents = {.random = test_random_seeded(seed)};
        json_t *id = json_integer(1);
        json_t *document = json_pack("{s:O}", "_id", id);
        json_t *fields = random_document(&documents, 3);
        ck_assert_int_eq(json_object_update(document, fields), 0);
        json_decref(fields);
        object_state *state = state_holding(id, document, 100);
        for (int64_t step = 1; step <= 4; step++) {
            json_t *next = mutated(&documents, document, 3);
            apply_diff_and_check(state, document, next, 100 + step * 10);
            json_decref(document);
            document = next;
        }
        object_state_free(state);
        json_decref(document);
        json_decref(id);
    }
}
END_TEST

static void assert_diff_error(const char *old_text, const char *new_text, const char *expected)
{
    json_t *old_document = old_text ? value_of(old_text) : NULL;
    json_t *new_document = new_text ? value_of(new_text) : NULL;
    json_t *id = json_integer(1);
    changeset changeset = {.origin = 1, .timestamp = 1};
    json_t *first = json_integer(0);
    ck_assert_int_eq(changeset_append(&changeset, CHANGESET_CREATE, TEST_COLLECTION, first, NULL,
                                      NULL, NULL, 0),
                     0);
    char message[256];
    ck_assert_int_eq(changeset_diff(TEST_COLLECTION, id, old_document, new_document, &changeset,
                                    message, sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, expected);
    ck_assert_uint_eq(changeset.count, 1);
    changeset_clear(&changeset);
    json_decref(first);
    json_decref(id);
    json_decref(old_document);
    json_decref(new_document);
}

static json_t *nested_arrays(size_t depth)
{
    json_t *value = json_integer(1);
    for (size_t i = 0; i < depth; i++) {
        json_t *array = json_array();
        ck_assert_ptr_nonnull(array);
        ck_assert_int_eq(json_array_append_new(array, value), 0);
        value = array;
    }
    return value;
}

START_TEST(test_diff_errors)
{
    assert_diff_error(NULL, "{'_id': 2}", "the new document's _id is not the object's id");
    assert_diff_error("{'_id': 2}", NULL, "the old document's _id is not the object's id");
    assert_diff_error(NULL, "{'a': {'b.c': 1}}",
                      "field name \"b.c\" holds '.' or NUL, which a path cannot spell");
    assert_diff_error("{'a': {'': 1}}", "{'a': {'x': 1}}",
                      "a field name in \"a\" is empty");
    assert_diff_error(NULL, "{'': 1}", "a field name in the document is empty");
    assert_diff_error(NULL, "{'a': 1, 'b': {'x': 1, 'y.z': 2}}",
                      "field name \"y.z\" holds '.' or NUL, which a path cannot spell");

    json_t *id = json_integer(1);
    json_t *deep = json_object();
    ck_assert_int_eq(json_object_set_new(deep, "a", nested_arrays(100)), 0);
    changeset changeset = {0};
    char message[256];
    ck_assert_int_eq(changeset_diff(TEST_COLLECTION, id, NULL, deep, &changeset, message,
                                    sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "the new document nests deeper than 100 levels");
    ck_assert_int_eq(changeset_diff(TEST_COLLECTION, id, deep, NULL, &changeset, message,
                                    sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "the old document nests deeper than 100 levels");
    json_t *array = json_array();
    ck_assert_int_eq(changeset_diff(TEST_COLLECTION, id, NULL, array, &changeset, message,
                                    sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "the new document is not a document");
    json_t *just_deep_enough = json_object();
    ck_assert_int_eq(json_object_set_new(just_deep_enough, "a", nested_arrays(99)), 0);
    ck_assert_int_eq(changeset_diff(TEST_COLLECTION, id, NULL, just_deep_enough, &changeset,
                                    message, sizeof message),
                     0);
    ck_assert_uint_eq(changeset.count, 2);
    ck_assert_int_eq(changeset_diff("$bad", id, NULL, just_deep_enough, &changeset, message,
                                    sizeof message),
                     -EINVAL);
    ck_assert_uint_eq(changeset.count, 2);
    changeset_clear(&changeset);
    json_decref(just_deep_enough);
    json_decref(array);
    json_decref(deep);
    json_decref(id);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Changesets as JSON                                                        */

static const char *const full_changeset =
    "{'origin': 7, 'client_version': 12, 'timestamp': 1714560000000, 'instructions': ["
    " {'op': 'create', 'collection': 'Task', 'id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}},"
    " {'op': 'set', 'collection': 'Task', 'id': {'$oid': '6650f0c2e4b0a1b2c3d4e5f6'},"
    "  'path': 'title', 'value': 'Buy milk'},"
    " {'op': 'set', 'collection': 'Task', 'id': 'a1', 'path': 'address.city',"
    "  'value': {'$date': '2024-05-01T12:00:00Z'}},"
    " {'op': 'set', 'collection': 'Task', 'id': 'a1', 'path': 'big',"
    "  'value': {'$numberLong': '9007199254740993'}},"
    " {'op': 'set', 'collection': 'Task', 'id': 'a1', 'path': 'tags',"
    "  'value': [{'k': {'$numberDecimal': '1.5'}}, {'$binary': {'base64': 'AQI=', 'subType': "
    "'05'}}, -0.0, {'$numberDouble': 'NaN'}, null]},"
    " {'op': 'set', 'collection': 'Task', 'id': 'a1', 'path': 'empty', 'value': {}},"
    " {'op': 'unset', 'collection': 'Task', 'id': 5, 'path': 'notes'},"
    " {'op': 'delete', 'collection': 'Task', 'id': {'$numberLong': '-9223372036854775808'}}]}";

START_TEST(test_changeset_json_round_trip)
{
    json_t *raw = load(full_changeset);
    changeset changeset;
    char message[256];
    ck_assert_msg(changeset_parse(raw, &changeset, message, sizeof message) == 0, "%s", message);
    ck_assert_str_eq(message, "");
    ck_assert_uint_eq(changeset.origin, 7);
    ck_assert_uint_eq(changeset.client_version, 12);
    ck_assert_int_eq(changeset.timestamp, 1714560000000);
    ck_assert_uint_eq(changeset.count, 8);
    ck_assert_int_eq(changeset.instructions[1].operation, CHANGESET_SET);
    ck_assert_str_eq(changeset.instructions[1].collection, "Task");
    ck_assert_str_eq(changeset.instructions[2].path, "address.city");
    ck_assert_int_eq(value_type_of(changeset.instructions[2].value), VALUE_DATE);
    ck_assert_int_eq(value_type_of(changeset.instructions[3].value), VALUE_INT);
    ck_assert_ptr_null(changeset.instructions[0].path);
    ck_assert_ptr_null(changeset.instructions[0].value);

    json_t *written = changeset_to_json(&changeset);
    ck_assert_ptr_nonnull(written);
    char *written_text = json_dumps(written, JSON_COMPACT);
    char *raw_text = json_dumps(raw, JSON_COMPACT);
    ck_assert_str_eq(written_text, raw_text);

    struct changeset again;
    ck_assert_int_eq(changeset_parse(written, &again, message, sizeof message), 0);
    json_t *rewritten = changeset_to_json(&again);
    ck_assert(json_equal(rewritten, written));

    free(raw_text);
    free(written_text);
    json_decref(rewritten);
    json_decref(written);
    changeset_clear(&again);
    changeset_clear(&changeset);
    ck_assert_uint_eq(changeset.count, 0);
    ck_assert_ptr_null(changeset.instructions);
    json_decref(raw);
}
END_TEST

START_TEST(test_changeset_to_json_range)
{
    changeset changeset = {.origin = (uint64_t)INT64_MAX + 1};
    ck_assert_ptr_null(changeset_to_json(&changeset));
    changeset.origin = 1;
    changeset.client_version = UINT64_MAX;
    ck_assert_ptr_null(changeset_to_json(&changeset));
    changeset.client_version = 0;
    changeset.timestamp = -1;
    ck_assert_ptr_null(changeset_to_json(&changeset));
    changeset.timestamp = 0;
    json_t *json = changeset_to_json(&changeset);
    ck_assert_ptr_nonnull(json);
    json_t *expected = load("{'origin': 1, 'client_version': 0, 'timestamp': 0, "
                            "'instructions': []}");
    ck_assert(json_equal(json, expected));
    json_decref(expected);
    json_decref(json);
}
END_TEST

static void assert_parse_error(const char *text, const char *expected)
{
    json_t *raw = load(text);
    changeset changeset;
    char message[256];
    ck_assert_int_eq(changeset_parse(raw, &changeset, message, sizeof message), -EINVAL);
    ck_assert_str_eq(message, expected);
    ck_assert_uint_eq(changeset.count, 0);
    ck_assert_ptr_null(changeset.instructions);
    json_decref(raw);
}

/* A changeset holding one instruction, given as single-quoted members. */
static void assert_instruction_error(const char *members, const char *expected)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{'origin': 1, 'client_version': 1, 'timestamp': 1, 'instructions': [{%s}]}",
             members);
    assert_parse_error(text, expected);
}

START_TEST(test_malformed_changesets)
{
    assert_parse_error("[]", "changeset: not a JSON object");
    assert_parse_error("{'origin': 1, 'client_version': 1, 'timestamp': 1, 'instructions': [],"
                       " 'extra': 1}",
                       "changeset: unknown member \"extra\"");
    assert_parse_error("{'client_version': 1, 'timestamp': 1, 'instructions': []}",
                       "changeset: missing \"origin\"");
    assert_parse_error("{'origin': -1, 'client_version': 1, 'timestamp': 1, 'instructions': []}",
                       "changeset: \"origin\" must be an integer >= 0");
    assert_parse_error("{'origin': 1, 'client_version': 1.0, 'timestamp': 1, "
                       "'instructions': []}",
                       "changeset: \"client_version\" must be an integer >= 0");
    assert_parse_error("{'origin': 1, 'client_version': 1, 'timestamp': '1', "
                       "'instructions': []}",
                       "changeset: \"timestamp\" must be an integer >= 0");
    assert_parse_error("{'origin': 1, 'client_version': 1, 'timestamp': 1}",
                       "changeset: missing \"instructions\"");
    assert_parse_error("{'origin': 1, 'client_version': 1, 'timestamp': 1, 'instructions': {}}",
                       "changeset: \"instructions\" must be an array");
    assert_parse_error("{'origin': 1, 'client_version': 1, 'timestamp': 1, 'instructions': [5]}",
                       "instructions[0]: not a JSON object");
    assert_parse_error("{'origin': 1, 'client_version': 1, 'timestamp': 1, 'instructions': ["
                       "{'op': 'create', 'collection': 'Task', 'id': 1},"
                       "{'op': 'create', 'collection': 'Task', 'id': 1.5}]}",
                       "instructions[1]: id must be a string, int or ObjectId, not double");

    assert_instruction_error("'collection': 'Task', 'id': 1", "instructions[0]: missing \"op\"");
    assert_instruction_error("'op': 3, 'collection': 'Task', 'id': 1",
                             "instructions[0]: \"op\" must be a string");
    assert_instruction_error("'op': 'move', 'collection': 'Task', 'id': 1",
                             "instructions[0]: unknown op \"move\"");
    assert_instruction_error("'op': 'create', 'collection': 'Task', 'id': 1, 'where': 2",
                             "instructions[0]: unknown member \"where\"");
    assert_instruction_error("'op': 'create', 'id': 1",
                             "instructions[0]: missing \"collection\"");
    assert_instruction_error("'op': 'create', 'collection': 'T\\u0000', 'id': 1",
                             "instructions[0]: \"collection\" holds a NUL");
    assert_instruction_error("'op': 'create', 'collection': 'a/b', 'id': 1",
                             "instructions[0]: collection \"a/b\" is not a collection name (1 to "
                             "255 bytes, no '$' or '/', not starting with '.')");
    assert_instruction_error("'op': 'create', 'collection': '', 'id': 1",
                             "instructions[0]: collection \"\" is not a collection name (1 to "
                             "255 bytes, no '$' or '/', not starting with '.')");
    assert_instruction_error("'op': 'create', 'collection': 'Task'",
                             "instructions[0]: missing \"id\"");
    assert_instruction_error("'op': 'create', 'collection': 'Task', 'id': true",
                             "instructions[0]: id must be a string, int or ObjectId, not bool");
    assert_instruction_error("'op': 'create', 'collection': 'Task', 'id': {'$oid': 'xyz'}",
                             "instructions[0]: id: $oid must be 24 hexadecimal digits");
    assert_instruction_error("'op': 'create', 'collection': 'Task', 'id': 1, 'path': 'a'",
                             "instructions[0]: create takes no path");
    assert_instruction_error("'op': 'delete', 'collection': 'Task', 'id': 1, 'value': 1",
                             "instructions[0]: delete takes no value");
    assert_instruction_error("'op': 'set', 'collection': 'Task', 'id': 1, 'value': 1",
                             "instructions[0]: set needs a path");
    assert_instruction_error("'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a'",
                             "instructions[0]: set needs a value");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a', "
                             "'value': null",
                             "instructions[0]: unset takes no value");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 1",
                             "instructions[0]: \"path\" must be a string");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a\\u0000'",
                             "instructions[0]: \"path\" holds a NUL");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': ''",
                             "instructions[0]: path is empty");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a..b'",
                             "instructions[0]: path \"a..b\" has an empty field name");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a.'",
                             "instructions[0]: path \"a.\" has an empty field name");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': '.a'",
                             "instructions[0]: path \".a\" has an empty field name");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': 'a.$b'",
                             "instructions[0]: path \"a.$b\" has a field name that starts with "
                             "'$'");
    assert_instruction_error("'op': 'unset', 'collection': 'Task', 'id': 1, 'path': '_id'",
                             "instructions[0]: path \"_id\" would change _id, which never "
                             "changes");
    assert_instruction_error("'op': 'set', 'collection': 'Task', 'id': 1, 'path': '_id.x', "
                             "'value': 1",
                             "instructions[0]: path \"_id.x\" would change _id, which never "
                             "changes");
    assert_instruction_error("'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', "
                             "'value': {'b': 1}",
                             "instructions[0]: a set's value may not be a document with fields "
                             "(set each field)");
    assert_instruction_error("'op': 'set', 'collection': 'Task', 'id': 1, 'path': 'a', "
                             "'value': {'$regularExpression': {'pattern': 'x', 'options': ''}}",
                             "instructions[0]: value: unsupported Extended JSON type "
                             "$regularExpression");
}
END_TEST

/* A set instruction with a path of field_count names and a value of
 * arrays nested value_depth deep. */
static json_t *deep_instruction(size_t field_count, size_t value_depth)
{
    char *path = calloc(2 * field_count + 1, 1);
    ck_assert_ptr_nonnull(path);
    for (size_t i = 0; i < field_count; i++)
        strcat(path, i == 0 ? "a" : ".a");
    json_t *changeset = json_pack("{s:i, s:i, s:i, s:[{s:s, s:s, s:i, s:s, s:o}]}", "origin", 1,
                                  "client_version", 1, "timestamp", 1, "instructions", "op",
                                  "set", "collection", "Task", "id", 1, "path", path, "value",
                                  nested_arrays(value_depth));
    ck_assert_ptr_nonnull(changeset);
    free(path);
    return changeset;
}

static void assert_deep_instruction(size_t field_count, size_t value_depth, const char *expected)
{
    json_t *raw = deep_instruction(field_count, value_depth);
    changeset changeset;
    char message[256];
    int result = changeset_parse(raw, &changeset, message, sizeof message);
    ck_assert_str_eq(message, expected);
    ck_assert_int_eq(result, expected[0] == '\0' ? 0 : -EINVAL);
    changeset_clear(&changeset);
    json_decref(raw);
}

START_TEST(test_nesting_is_bounded)
{
    assert_deep_instruction(100, 0, "");
    assert_deep_instruction(101, 0, "instructions[0]: path has more than 100 field names");
    assert_deep_instruction(1, 99, "");
    assert_deep_instruction(1, 100,
                            "instructions[0]: the path and its value nest deeper than 100 "
                            "levels");
    assert_deep_instruction(50, 51,
                            "instructions[0]: the path and its value nest deeper than 100 "
                            "levels");
    assert_deep_instruction(1, 102, "instructions[0]: value nests deeper than 100 levels");
    assert_deep_instruction(1, 5000, "instructions[0]: value nests deeper than 100 levels");
}
END_TEST

START_TEST(test_append)
{
    changeset changeset = {.origin = 3, .timestamp = 10};
    json_t *id = json_string("a1");
    json_t *value = value_of("{'$date': 0}");
    char message[256];
    ck_assert_int_eq(changeset_append(&changeset, CHANGESET_SET, "Task", id, "when", value,
                                      message, sizeof message),
                     0);
    ck_assert_str_eq(message, "");
    json_decref(value);
    ck_assert_int_eq(changeset_append(&changeset, CHANGESET_SET, "Task", id, "when", NULL,
                                      message, sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "set needs a value");
    ck_assert_int_eq(changeset_append(&changeset, (changeset_operation)9, "Task", id, NULL, NULL,
                                      message, sizeof message),
                     -EINVAL);
    ck_assert_str_eq(message, "unknown operation 9");
    ck_assert_int_eq(changeset_append(&changeset, CHANGESET_CREATE, ".hidden", id, NULL, NULL,
                                      NULL, 0),
                     -EINVAL);
    char tiny[8];
    ck_assert_int_eq(changeset_append(&changeset, CHANGESET_UNSET, "Task", id, "", NULL, tiny,
                                      sizeof tiny),
                     -EINVAL);
    ck_assert_str_eq(tiny, "path is");
    ck_assert_uint_eq(changeset.count, 1);
    json_t *json = changeset_to_json(&changeset);
    json_t *expected = load("{'origin': 3, 'client_version': 0, 'timestamp': 10, "
                            "'instructions': [{'op': 'set', 'collection': 'Task', 'id': 'a1', "
                            "'path': 'when', 'value': {'$date': '1970-01-01T00:00:00Z'}}]}");
    ck_assert(json_equal(json, expected));
    json_decref(expected);
    json_decref(json);
    json_decref(id);
    changeset_clear(&changeset);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* States as JSON                                                            */

START_TEST(test_state_json)
{
    const test_step steps[] = {
        {CHANGESET_CREATE, NULL, NULL, at(50, 1, 0)},
        {CHANGESET_SET, "title", "'gone'", at(50, 1, 1)},
        {CHANGESET_DELETE, NULL, NULL, at(100, 7, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(200, 9, 0)},
        {CHANGESET_CREATE, NULL, NULL, at(300, 8, 0)},
        {CHANGESET_SET, "address.city", "'Paris'", at(200, 9, 2)},
        {CHANGESET_UNSET, "notes", NULL, at(200, 9, 3)},
        {CHANGESET_SET, "big", "{'$numberLong': '9007199254740993'}", at(200, 9, 4)},
    };
    object_state *state = new_state();
    for (size_t i = 0; i < STEPS_COUNT(steps); i++)
        ck_assert_int_ge(apply_step(state, &steps[i]), 0);
    json_t *json = object_state_to_json(state);
    json_t *expected =
        load("{'id': 1, 'deleted': [100, 7, 0], 'created': [[200, 9, 0], [300, 8, 0]],"
             " 'fields': ["
             "  {'path': 'address', 'first': [200, 9, 2]},"
             "  {'path': 'address.city', 'first': [200, 9, 2], 'last': [200, 9, 2],"
             "   'value': 'Paris'},"
             "  {'path': 'big', 'first': [200, 9, 4], 'last': [200, 9, 4],"
             "   'value': {'$numberLong': '9007199254740993'}},"
             "  {'path': 'notes', 'first': [200, 9, 3], 'last': [200, 9, 3], 'unset': true},"
             "  {'path': 'title', 'first': [50, 1, 1]}]}");
    char *text = json_dumps(json, JSON_COMPACT);
    ck_assert_msg(json_equal(json, expected), "%s", text);
    free(text);

    object_state *read;
    char message[256];
    ck_assert_msg(object_state_from_json(json, &read, message, sizeof message) == 0, "%s",
                  message);
    char *original_text = state_text(state);
    char *read_text = state_text(read);
    ck_assert_str_eq(read_text, original_text);
    assert_document(read, "{'_id': 1, 'address': {'city': 'Paris'}, "
                          "'big': {'$numberLong': '9007199254740993'}}");
    test_step more = {CHANGESET_SET, "title", "'back'", at(400, 1, 0)};
    ck_assert_int_eq(apply_step(read, &more), 1);
    assert_document(read, "{'_id': 1, 'title': 'back', 'address': {'city': 'Paris'}, "
                          "'big': {'$numberLong': '9007199254740993'}}");

    free(read_text);
    free(original_text);
    object_state_free(read);
    json_decref(expected);
    json_decref(json);
    object_state_free(state);

    object_state *fresh = new_state();
    json = object_state_to_json(fresh);
    expected = load("{'id': 1, 'created': [], 'fields': []}");
    ck_assert(json_equal(json, expected));
    json_decref(expected);
    json_decref(json);
    object_state_free(fresh);
}
END_TEST

static void assert_state_error(const char *text, const char *expected)
{
    json_t *raw = load(text);
    object_state *state = NULL;
    char message[256];
    ck_assert_int_eq(object_state_from_json(raw, &state, message, sizeof message), -EINVAL);
    ck_assert_str_eq(message, expected);
    ck_assert_ptr_null(state);
    json_decref(raw);
}

#define TEST_CLOCK_ERROR \
    "is not a clock [timestamp, origin, sequence] (integers >= 0, sequence < 2^32)"

START_TEST(test_malformed_states)
{
    assert_state_error("[]", "state: not a JSON object");
    assert_state_error("{'id': 1, 'created': [], 'fields': [], 'x': 1}",
                       "state: unknown member \"x\"");
    assert_state_error("{'created': [], 'fields': []}", "state: missing \"id\"");
    assert_state_error("{'id': 1.5, 'created': [], 'fields': []}",
                       "state: id must be a string, int or ObjectId, not double");
    assert_state_error("{'id': {'$oid': 'x'}, 'created': [], 'fields': []}",
                       "state: id: $oid must be 24 hexadecimal digits");
    assert_state_error("{'id': 1, 'deleted': [1, 2], 'created': [], 'fields': []}",
                       "state: \"deleted\" " TEST_CLOCK_ERROR);
    assert_state_error("{'id': 1, 'fields': []}", "state: \"created\" must be an array");
    assert_state_error("{'id': 1, 'created': [[1, 2, 4294967296]], 'fields': []}",
                       "state: created[0]: a create " TEST_CLOCK_ERROR);
    assert_state_error("{'id': 1, 'created': [[1, -2, 0]], 'fields': []}",
                       "state: created[0]: a create " TEST_CLOCK_ERROR);
    assert_state_error("{'id': 1, 'created': []}", "state: \"fields\" must be an array");
    assert_state_error("{'id': 1, 'created': [], 'fields': [1]}",
                       "state: fields[0]: not a JSON object");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1],"
                       " 'colour': 1}]}",
                       "state: fields[0]: unknown member \"colour\"");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'first': [1, 1, 1]}]}",
                       "state: fields[0]: missing \"path\"");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a..b', "
                       "'first': [1, 1, 1]}]}",
                       "state: fields[0]: path \"a..b\" has an empty field name");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a'}]}",
                       "state: fields[0]: \"first\" " TEST_CLOCK_ERROR);
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1], "
                       "'last': [1, 1, 1]}]}",
                       "state: fields[0]: a write is \"last\" with either \"value\" or "
                       "\"unset\": true");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1], "
                       "'value': 1}]}",
                       "state: fields[0]: a write is \"last\" with either \"value\" or "
                       "\"unset\": true");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1], "
                       "'last': [1, 1, 1], 'unset': false}]}",
                       "state: fields[0]: a write is \"last\" with either \"value\" or "
                       "\"unset\": true");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1], "
                       "'last': [1, 1, 1], 'value': 1, 'unset': true}]}",
                       "state: fields[0]: a write is \"last\" with either \"value\" or "
                       "\"unset\": true");
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1], "
                       "'last': 5, 'value': 1}]}",
                       "state: fields[0]: \"last\" " TEST_CLOCK_ERROR);
    assert_state_error("{'id': 1, 'created': [], 'fields': [{'path': 'a', 'first': [1, 1, 1], "
                       "'last': [1, 1, 1], 'value': {'b': 1}}]}",
                       "state: fields[0]: a set's value may not be a document with fields "
                       "(set each field)");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Property: any arrival order gives the same bytes                          */

#define PROPERTY_RUNS 2000
#define PROPERTY_OBJECTS 2
#define PROPERTY_MAX_ORIGINS 5
#define PROPERTY_MAX_CHANGESETS 3
#define PROPERTY_MAX_INSTRUCTIONS 6
#define PROPERTY_MAX_ENTRIES \
    (PROPERTY_MAX_ORIGINS * PROPERTY_MAX_CHANGESETS * PROPERTY_MAX_INSTRUCTIONS)

static const char *const property_paths[] = {"a", "a.b", "a.c", "a.b.d", "e", "e.f", "g"};
static const char *const property_values[] = {
    "1",         "2",        "'x'",        "2.5",           "true",
    "null",      "[1, 2]",   "[{'k': 1}]", "{}",            "[[]]",
    "{'$oid': '6650f0c2e4b0a1b2c3d4e5f6'}", "{'$date': 1}", "-0.0",
};

/* One instruction of a run, with the origin whose order it belongs to. */
typedef struct property_entry {
    const changeset_instruction *instruction;
    changeset_clock clock;
    size_t origin_index;
    size_t object_index;
} property_entry;

typedef struct property_run {
    test_random random;
    json_t *ids[PROPERTY_OBJECTS];
    json_t *values[sizeof property_values / sizeof property_values[0]];
    changeset changesets[PROPERTY_MAX_ORIGINS * PROPERTY_MAX_CHANGESETS];
    size_t changeset_count;
    size_t origin_count;
    property_entry entries[PROPERTY_MAX_ENTRIES];
    size_t entry_count;
    /* What the first order gave, per object: documents and states. */
    char *documents[PROPERTY_OBJECTS];
    char *states[PROPERTY_OBJECTS];
} property_run;

static void property_append_random(property_run *run, changeset *changeset)
{
    size_t kind = test_random_below(&run->random, 20);
    json_t *id = run->ids[test_random_below(&run->random, PROPERTY_OBJECTS)];
    const char *path = property_paths[test_random_below(&run->random, 7)];
    const json_t *value =
        run->values[test_random_below(&run->random, sizeof property_values /
                                                        sizeof property_values[0])];
    changeset_operation operation = kind < 3    ? CHANGESET_CREATE
                                    : kind < 5  ? CHANGESET_DELETE
                                    : kind < 15 ? CHANGESET_SET
                                                : CHANGESET_UNSET;
    bool writes_field = operation == CHANGESET_SET || operation == CHANGESET_UNSET;
    ck_assert_int_eq(changeset_append(changeset, operation, TEST_COLLECTION, id,
                                      writes_field ? path : NULL,
                                      operation == CHANGESET_SET ? value : NULL, NULL, 0),
                     0);
}

static size_t property_object_index(const property_run *run, const json_t *id)
{
    for (size_t i = 0; i < PROPERTY_OBJECTS; i++) {
        if (json_equal(run->ids[i], id))
            return i;
    }
    ck_abort_msg("unknown id");
    return 0;
}

/* Origins' timestamps overlap, so that ties go to origins and sequences;
 * each origin's own timestamps increase, as the contract asks. */
static void property_generate(property_run *run)
{
    run->origin_count = 3 + test_random_below(&run->random, PROPERTY_MAX_ORIGINS - 2);
    for (size_t origin = 0; origin < run->origin_count; origin++) {
        int64_t timestamp = (int64_t)test_random_below(&run->random, 4);
        size_t changesets = 1 + test_random_below(&run->random, PROPERTY_MAX_CHANGESETS);
        for (size_t c = 0; c < changesets; c++) {
            changeset *changeset = &run->changesets[run->changeset_count++];
            *changeset = (struct changeset){.origin = origin + 1, .timestamp = timestamp};
            timestamp += 1 + (int64_t)test_random_below(&run->random, 3);
            size_t count = 1 + test_random_below(&run->random, PROPERTY_MAX_INSTRUCTIONS);
            for (size_t i = 0; i < count; i++)
                property_append_random(run, changeset);
            for (size_t i = 0; i < count; i++)
                run->entries[run->entry_count++] = (property_entry){
                    .instruction = &changeset->instructions[i],
                    .clock = changeset_instruction_clock(changeset, i),
                    .origin_index = origin,
                    .object_index = property_object_index(run, changeset->instructions[i].id),
                };
        }
    }
}

static void property_setup(property_run *run, uint64_t seed)
{
    *run = (property_run){.random = test_random_seeded(seed)};
    for (size_t i = 0; i < PROPERTY_OBJECTS; i++)
        run->ids[i] = json_integer((json_int_t)i + 1);
    for (size_t i = 0; i < sizeof property_values / sizeof property_values[0]; i++)
        run->values[i] = value_of(property_values[i]);
    property_generate(run);
}

static void property_teardown(property_run *run)
{
    for (size_t i = 0; i < run->changeset_count; i++)
        changeset_clear(&run->changesets[i]);
    for (size_t i = 0; i < PROPERTY_OBJECTS; i++) {
        json_decref(run->ids[i]);
        free(run->documents[i]);
        free(run->states[i]);
    }
    for (size_t i = 0; i < sizeof property_values / sizeof property_values[0]; i++)
        json_decref(run->values[i]);
}

/* The reference: the document one gets by replaying the instructions in
 * clock order, with the meanings changeset.h gives them. */
typedef struct property_replay {
    bool exists;
    json_t *document;
} property_replay;

static json_t *property_replay_parent(json_t *document, const char *path, char *last,
                                      size_t last_size)
{
    json_t *current = document;
    const char *name = path;
    for (const char *dot = strchr(name, '.'); dot; dot = strchr(name, '.')) {
        char step[64];
        snprintf(step, sizeof step, "%.*s", (int)(dot - name), name);
        json_t *child = json_object_get(current, step);
        if (!child || value_type_of(child) != VALUE_DOCUMENT) {
            child = json_object();
            ck_assert_int_eq(json_object_set_new(current, step, child), 0);
        }
        current = child;
        name = dot + 1;
    }
    snprintf(last, last_size, "%s", name);
    return current;
}

static void property_replay_apply(property_replay *replay,
                                  const changeset_instruction *instruction)
{
    char last[64];
    json_t *parent;
    switch (instruction->operation) {
    case CHANGESET_CREATE:
        if (!replay->exists)
            ck_assert_int_eq(json_object_clear(replay->document), 0);
        replay->exists = true;
        break;
    case CHANGESET_DELETE:
        replay->exists = false;
        break;
    case CHANGESET_SET:
        if (!replay->exists)
            break;
        parent = property_replay_parent(replay->document, instruction->path, last, sizeof last);
        ck_assert_int_eq(json_object_set_new(parent, last, json_deep_copy(instruction->value)),
                         0);
        break;
    case CHANGESET_UNSET:
        if (!replay->exists)
            break;
        parent = property_replay_parent(replay->document, instruction->path, last, sizeof last);
        json_object_del(parent, last);
        break;
    }
}

static int property_entry_order(const void *a, const void *b)
{
    const property_entry *left = a;
    const property_entry *right = b;
    return changeset_clock_compare(&left->clock, &right->clock);
}

/* Checks the documents of the merge against the replay, ignoring field
 * order (the replay keeps insertion order, the merge its own). */
static void property_check_replay(property_run *run, object_state *const *states)
{
    property_entry sorted[PROPERTY_MAX_ENTRIES];
    memcpy(sorted, run->entries, run->entry_count * sizeof sorted[0]);
    qsort(sorted, run->entry_count, sizeof sorted[0], property_entry_order);
    for (size_t object = 0; object < PROPERTY_OBJECTS; object++) {
        property_replay replay = {.document = json_object()};
        for (size_t i = 0; i < run->entry_count; i++) {
            if (sorted[i].object_index == object)
                property_replay_apply(&replay, sorted[i].instruction);
        }
        json_t *document = document_of(states[object]);
        if (replay.exists) {
            ck_assert_int_eq(json_object_set(replay.document, "_id", run->ids[object]), 0);
            char *merged = line_of(document);
            char *replayed = line_of(replay.document);
            ck_assert_msg(json_equal(document, replay.document), "merge %s, replay %s", merged,
                          replayed);
            free(replayed);
            free(merged);
        } else {
            ck_assert_ptr_null(document);
        }
        json_decref(document);
        json_decref(replay.document);
    }
}

/* Applies the entries in order (an array of indexes) to fresh states, and
 * compares the results with the first order's, byte for byte.  When
 * round_trip_at is below count, the states go through JSON there. */
static void property_apply_order(property_run *run, const size_t *order, size_t count,
                                 size_t round_trip_at)
{
    object_state *states[PROPERTY_OBJECTS];
    for (size_t object = 0; object < PROPERTY_OBJECTS; object++) {
        states[object] = object_state_new(run->ids[object]);
        ck_assert_ptr_nonnull(states[object]);
    }
    for (size_t i = 0; i < count; i++) {
        if (i == round_trip_at) {
            for (size_t object = 0; object < PROPERTY_OBJECTS; object++) {
                json_t *json = object_state_to_json(states[object]);
                object_state *read;
                ck_assert_int_eq(object_state_from_json(json, &read, NULL, 0), 0);
                json_decref(json);
                object_state_free(states[object]);
                states[object] = read;
            }
        }
        const property_entry *entry = &run->entries[order[i]];
        ck_assert_int_ge(
            object_state_apply(states[entry->object_index], entry->instruction, &entry->clock),
            0);
    }
    for (size_t object = 0; object < PROPERTY_OBJECTS; object++) {
        json_t *document = document_of(states[object]);
        char *document_text = pretty_of(document);
        char *state = state_text(states[object]);
        json_decref(document);
        if (!run->documents[object]) {
            run->documents[object] = document_text;
            run->states[object] = state;
            continue;
        }
        ck_assert_str_eq(document_text, run->documents[object]);
        ck_assert_str_eq(state, run->states[object]);
        free(document_text);
        free(state);
    }
    property_check_replay(run, states);
    for (size_t object = 0; object < PROPERTY_OBJECTS; object++)
        object_state_free(states[object]);
}

static void property_shuffle(property_run *run, size_t *order, size_t count)
{
    for (size_t i = count; i > 1; i--) {
        size_t j = test_random_below(&run->random, i);
        size_t kept = order[i - 1];
        order[i - 1] = order[j];
        order[j] = kept;
    }
}

/* A random interleaving that keeps each origin's own order (entries are
 * generated origin by origin, in order). */
static void property_interleave(property_run *run, size_t *order)
{
    size_t next[PROPERTY_MAX_ORIGINS] = {0};
    size_t end[PROPERTY_MAX_ORIGINS] = {0};
    for (size_t i = 0; i < run->entry_count; i++) {
        size_t origin = run->entries[i].origin_index;
        if (end[origin] == 0)
            next[origin] = i;
        end[origin] = i + 1;
    }
    for (size_t taken = 0; taken < run->entry_count;) {
        size_t origin = test_random_below(&run->random, run->origin_count);
        if (next[origin] < end[origin])
            order[taken++] = next[origin]++;
    }
}

START_TEST(test_any_order_gives_the_same_bytes)
{
    for (uint64_t seed = 1; seed <= PROPERTY_RUNS; seed++) {
        property_run run;
        property_setup(&run, seed);
        size_t order[2 * PROPERTY_MAX_ENTRIES];
        size_t count = run.entry_count;
        for (size_t i = 0; i < count; i++)
            order[i] = i;
        property_apply_order(&run, order, count, count);
        for (size_t i = 0; i < count; i++)
            order[i] = count - 1 - i;
        property_apply_order(&run, order, count, count);
        for (int shuffle = 0; shuffle < 3; shuffle++) {
            property_shuffle(&run, order, count);
            property_apply_order(&run, order, count, count);
        }
        for (int interleaving = 0; interleaving < 2; interleaving++) {
            property_interleave(&run, order);
            property_apply_order(&run, order, count, count);
        }
        property_shuffle(&run, order, count);
        property_apply_order(&run, order, count, count / 2);
        /* Repeats change nothing: every instruction twice, shuffled. */
        for (size_t i = 0; i < count; i++)
            order[count + i] = order[i];
        property_shuffle(&run, order, 2 * count);
        property_apply_order(&run, order, 2 * count, 2 * count);
        property_teardown(&run);
    }
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("changeset");

    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, test_last_writer_wins_by_timestamp);
    tcase_add_test(rules, test_equal_timestamps_go_by_origin);
    tcase_add_test(rules, test_equal_origins_go_by_sequence);
    tcase_add_test(rules, test_delete_wins_over_concurrent_later_updates);
    tcase_add_test(rules, test_create_after_delete_is_a_fresh_object);
    tcase_add_test(rules, test_two_creates_are_one_object);
    tcase_add_test(rules, test_embedded_objects_merge_field_by_field);
    tcase_add_test(rules, test_arrays_are_replaced_whole);
    tcase_add_test(rules, test_unsets_are_last_writer_wins_too);
    tcase_add_test(rules, test_later_field_under_a_value_makes_a_document);
    tcase_add_test(rules, test_later_value_replaces_a_document);
    tcase_add_test(rules, test_prefix_conflicts_chain);
    tcase_add_test(rules, test_unset_under_a_value_leaves_an_empty_document);
    tcase_add_test(rules, test_empty_document_values);
    tcase_add_test(rules, test_writes_count_only_while_the_object_lives);
    tcase_add_test(rules, test_equal_clocks_still_converge);
    tcase_add_test(rules, test_field_order_follows_first_writes);
    tcase_add_test(rules, test_apply_says_when_the_document_changed);
    tcase_add_test(rules, test_join_says_when_the_state_changed);
    tcase_add_test(rules, test_apply_refuses_bad_instructions);
    tcase_add_test(rules, test_clock_compare);
    suite_add_tcase(suite, rules);

    TCase *diff = tcase_create("diff");
    tcase_add_test(diff, test_diff_instructions);
    tcase_add_test(diff, test_diff_round_trips);
    tcase_add_test(diff, test_diff_random_round_trips);
    tcase_add_test(diff, test_diff_errors);
    tcase_add_test(diff, test_replay_follows_instructions_in_order);
    suite_add_tcase(suite, diff);

    TCase *json = tcase_create("json");
    tcase_add_test(json, test_changeset_json_round_trip);
    tcase_add_test(json, test_changeset_to_json_range);
    tcase_add_test(json, test_malformed_changesets);
    tcase_add_test(json, test_nesting_is_bounded);
    tcase_add_test(json, test_append);
    tcase_add_test(json, test_state_json);
    tcase_add_test(json, test_malformed_states);
    suite_add_tcase(suite, json);

    TCase *property = tcase_create("property");
    tcase_set_timeout(property, 300);
    tcase_add_test(property, test_any_order_gives_the_same_bytes);
    suite_add_tcase(suite, property);
    return suite;
}

/*
 * Unit tests for object_name.c: the file name of every kind of _id, the
 * names that are scratch, long string _ids and their hashed names, and
 * random round trips in both directions.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/object_name.h"
#include "realmfs/value.h"

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

static void assert_name_of(const json_t *id, const char *expected)
{
    char name[OBJECT_NAME_MAX + 1];
    ck_assert_int_eq(object_name_from_id(id, name), 0);
    ck_assert_str_eq(name, expected);
}

/* The name decodes to exactly this _id (json_equal: 5 and 5.0 differ). */
static void assert_id_of(const char *name, const json_t *expected)
{
    json_t *id = NULL;
    ck_assert_int_eq(object_name_classify(name, &id), OBJECT_NAME_ID);
    ck_assert_ptr_nonnull(id);
    ck_assert_msg(json_equal(id, expected), "%s decoded to another _id", name);
    json_decref(id);
}

/* Both directions at once: the _id's name is expected, and it reads back. */
static void assert_string_id_named(const char *bytes, size_t length, const char *expected)
{
    json_t *id = json_stringn(bytes, length);
    ck_assert_ptr_nonnull(id);
    assert_name_of(id, expected);
    assert_id_of(expected, id);
    json_decref(id);
}

static void assert_scratch(const char *name)
{
    json_t *id = json_true();
    ck_assert_msg(object_name_classify(name, &id) == OBJECT_NAME_SCRATCH,
                  "\"%s\" is not scratch", name);
    ck_assert_ptr_null(id);
}

START_TEST(test_int_names)
{
    json_t *id = json_integer(42);
    assert_name_of(id, "42.json");
    assert_id_of("42.json", id);
    json_decref(id);

    id = json_integer(-7);
    assert_name_of(id, "-7.json");
    assert_id_of("-7.json", id);
    json_decref(id);

    id = json_integer(0);
    assert_name_of(id, "0.json");
    assert_id_of("0.json", id);
    json_decref(id);

    id = json_integer(INT64_MAX);
    assert_name_of(id, "9223372036854775807.json");
    assert_id_of("9223372036854775807.json", id);
    json_decref(id);

    id = json_integer(INT64_MIN);
    assert_name_of(id, "-9223372036854775808.json");
    assert_id_of("-9223372036854775808.json", id);
    json_decref(id);
}
END_TEST

/* Digit stems that are not how an int is written are string _ids. */
START_TEST(test_non_canonical_numbers_are_strings)
{
    static const char *const stems[] = {
        "-0", "007", "00", "+5", "-", "1e3", "4.0", " 1",
        "9223372036854775808", "-9223372036854775809", "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.json", stems[i]);
        assert_string_id_named(stems[i], strlen(stems[i]), name);
    }
}
END_TEST

START_TEST(test_object_id_names)
{
    const uint8_t bytes[VALUE_OBJECT_ID_SIZE] = {0x66, 0x50, 0xf0, 0xc2, 0xe4, 0xb0,
                                                 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6};
    json_t *id = value_new_object_id(bytes);
    ck_assert_ptr_nonnull(id);
    assert_name_of(id, "6650f0c2e4b0a1b2c3d4e5f6.json");
    assert_id_of("6650f0c2e4b0a1b2c3d4e5f6.json", id);
    json_decref(id);

    /* Only 24 lowercase hex digits are an ObjectId. */
    assert_string_id_named("6650F0C2E4B0A1B2C3D4E5F6", 24, "6650F0C2E4B0A1B2C3D4E5F6.json");
    assert_string_id_named("6650f0c2e4b0a1b2c3d4e5f", 23, "6650f0c2e4b0a1b2c3d4e5f.json");
    assert_string_id_named("6650f0c2e4b0a1b2c3d4e5f60", 25, "6650f0c2e4b0a1b2c3d4e5f60.json");
    assert_string_id_named("6650f0c2e4b0a1b2c3d4e5fg", 24, "6650f0c2e4b0a1b2c3d4e5fg.json");
}
END_TEST

START_TEST(test_string_escapes)
{
    assert_string_id_named("a1", 2, "a1.json");
    assert_string_id_named("42", 2, "%342.json");
    assert_string_id_named("-7", 2, "%2D7.json");
    assert_string_id_named("0", 1, "%30.json");
    assert_string_id_named("6650f0c2e4b0a1b2c3d4e5f6", 24, "%36650f0c2e4b0a1b2c3d4e5f6.json");
    assert_string_id_named("a/b", 3, "a%2Fb.json");
    assert_string_id_named("100%", 4, "100%25.json");
    assert_string_id_named("%2F", 3, "%252F.json");
    assert_string_id_named("%~", 2, "%25~.json");
    assert_string_id_named("a\0b", 3, "a%00b.json");
    assert_string_id_named("\0", 1, "%00.json");
    assert_string_id_named(".hidden", 7, "%2Ehidden.json");
    assert_string_id_named(".", 1, "%2E.json");
    assert_string_id_named("..", 2, "%2E..json");
    assert_string_id_named("a.b", 3, "a.b.json");
    assert_string_id_named("task.json", 9, "task.json.json");
    assert_string_id_named("#a1#", 4, "#a1#.json");
    assert_string_id_named("~", 1, "~.json");
    assert_string_id_named("héllo wörld", strlen("héllo wörld"), "héllo wörld.json");
    assert_string_id_named("日本", strlen("日本"), "日本.json");
}
END_TEST

START_TEST(test_scratch_names)
{
    static const char *const names[] = {
        /* editor and tool files */
        "a1.json~", ".a1.json.swp", ".#a1.json", "4913", "#a1.json#", "Task.json.tmp",
        "a1.JSON", "a1.json.", ".json", "json", "",
        /* a stem that starts with an unescaped '.' */
        ".hidden.json", "..json",
        /* '%' not followed by two uppercase hex digits */
        "%.json", "a%.json", "a%4.json", "%2e.json", "%2f.json", "a%ZZ.json", "a%~.json",
        "%~.json",
        /* escapes the encoder would not write */
        "%41.json", "a%2Eb.json", "%31%32.json", "%36650f0c2e4b0a1b2c3d4e5f.json",
        /* a '/' cannot be in a name the encoder writes */
        "a/b.json",
        /* not UTF-8 once decoded */
        "\xff.json", "%FF.json", "%C3.json", "%C0%80.json", "%ED%A0%80.json", "%F4%90%80%80.json",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_scratch(names[i]);
}
END_TEST

START_TEST(test_names_longer_than_a_file_name_are_scratch)
{
    char name[OBJECT_NAME_MAX + 2];
    memset(name, 'a', OBJECT_NAME_MAX + 1 - 5);
    memcpy(name + OBJECT_NAME_MAX + 1 - 5, ".json", 6);
    ck_assert_uint_eq(strlen(name), OBJECT_NAME_MAX + 1);
    assert_scratch(name);
}
END_TEST

START_TEST(test_classify_without_id)
{
    ck_assert_int_eq(object_name_classify("42.json", NULL), OBJECT_NAME_ID);
    ck_assert_int_eq(object_name_classify("a%2Fb.json", NULL), OBJECT_NAME_ID);
    ck_assert_int_eq(object_name_classify("a1.json~", NULL), OBJECT_NAME_SCRATCH);
}
END_TEST

START_TEST(test_ids_without_a_name)
{
    const uint8_t uuid[VALUE_UUID_SIZE] = {0};
    json_t *ids[] = {
        json_string(""),
        json_stringn_nocheck("\xff", 1),
        json_stringn_nocheck("a\xc3", 2),
        json_true(),
        json_null(),
        json_real(1.5),
        value_new_uuid(uuid),
        value_new_date(0),
        value_new_decimal("1"),
        json_pack("[i]", 1),
        json_pack("{s:i}", "a", 1),
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char name[OBJECT_NAME_MAX + 1];
        ck_assert_ptr_nonnull(ids[i]);
        ck_assert_msg(object_name_from_id(ids[i], name) == -EINVAL, "_id %zu got a name", i);
        json_decref(ids[i]);
    }
}
END_TEST

START_TEST(test_hash_vectors)
{
    ck_assert_uint_eq(object_name_hash("", 0), UINT64_C(0xcbf29ce484222325));
    ck_assert_uint_eq(object_name_hash("a", 1), UINT64_C(0xaf63dc4c8601ec8c));
    ck_assert_uint_eq(object_name_hash("foobar", 6), UINT64_C(0x85944171f73967e8));
    ck_assert_uint_ne(object_name_hash("a\0b", 3), object_name_hash("a", 1));
}
END_TEST

/* The hashed name of a long string: the expected prefix (escaped, as it
 * appears in the name), then the mark and hash; and it reads back as
 * hashed, with the decoded prefix and the hash. */
static void assert_hashed(const char *bytes, size_t length, const char *escaped_prefix,
                          const char *decoded_prefix, size_t decoded_prefix_length)
{
    char expected[OBJECT_NAME_MAX + 1];
    uint64_t expected_hash = object_name_hash(bytes, length);
    snprintf(expected, sizeof expected, "%s%%~%016llx.json", escaped_prefix,
             (unsigned long long)expected_hash);
    json_t *id = json_stringn(bytes, length);
    ck_assert_ptr_nonnull(id);
    assert_name_of(id, expected);
    json_decref(id);

    json_t *decoded = json_true();
    ck_assert_int_eq(object_name_classify(expected, &decoded), OBJECT_NAME_HASHED);
    ck_assert_ptr_null(decoded);

    char *prefix = NULL;
    size_t prefix_length = 0;
    uint64_t hash = 0;
    ck_assert_int_eq(object_name_hashed_parts(expected, &prefix, &prefix_length, &hash), 0);
    ck_assert_uint_eq(prefix_length, decoded_prefix_length);
    ck_assert_mem_eq(prefix, decoded_prefix, decoded_prefix_length);
    ck_assert_int_eq(prefix[prefix_length], '\0');
    ck_assert_uint_eq(hash, expected_hash);
    free(prefix);
}

/* A string made of count copies of unit after lead. */
static char *repeat(const char *lead, const char *unit, size_t count, size_t *length)
{
    size_t lead_length = strlen(lead), unit_length = strlen(unit);
    *length = lead_length + count * unit_length;
    char *text = malloc(*length + 1);
    ck_assert_ptr_nonnull(text);
    memcpy(text, lead, lead_length);
    for (size_t i = 0; i < count; i++)
        memcpy(text + lead_length + i * unit_length, unit, unit_length);
    text[*length] = '\0';
    return text;
}

START_TEST(test_longest_plain_name)
{
    size_t length;
    char *bytes = repeat("", "a", 250, &length);
    char expected[OBJECT_NAME_MAX + 1];
    snprintf(expected, sizeof expected, "%s.json", bytes);
    ck_assert_uint_eq(strlen(expected), OBJECT_NAME_MAX);
    assert_string_id_named(bytes, length, expected);
    free(bytes);

    /* 83 escapes are 249 bytes, and one more byte fits. */
    bytes = repeat("x", "/", 83, &length);
    char *escaped = repeat("x", "%2F", 83, &length);
    snprintf(expected, sizeof expected, "%s.json", escaped);
    assert_string_id_named(bytes, strlen(bytes), expected);
    free(bytes);
    free(escaped);
}
END_TEST

START_TEST(test_hashed_names)
{
    size_t length, prefix_length;
    char *prefix = repeat("", "a", 200, &prefix_length);
    char *bytes = repeat("", "a", 251, &length);
    assert_hashed(bytes, length, prefix, prefix, prefix_length);
    free(bytes);
    free(prefix);

    /* 84 escapes pass 250 bytes; 66 of them fit in the 200-byte prefix. */
    bytes = repeat("", "%", 84, &length);
    char *escaped = repeat("", "%25", 66, &prefix_length);
    prefix = repeat("", "%", 66, &prefix_length);
    assert_hashed(bytes, length, escaped, prefix, prefix_length);
    free(bytes);
    free(escaped);
    free(prefix);

    /* A leading '.' stays escaped in the prefix. */
    bytes = repeat(".", "x", 300, &length);
    escaped = repeat("%2E", "x", 197, &prefix_length);
    prefix = repeat(".", "x", 197, &prefix_length);
    assert_hashed(bytes, length, escaped, prefix, prefix_length);
    free(bytes);
    free(escaped);
    free(prefix);
}
END_TEST

/* The cut never splits a UTF-8 character: it backs up to its first byte. */
START_TEST(test_hashed_prefix_keeps_whole_characters)
{
    size_t length, prefix_length;
    char *bytes = repeat("a", "é", 200, &length);
    char *prefix = repeat("a", "é", 99, &prefix_length);
    ck_assert_uint_eq(prefix_length, 199);
    assert_hashed(bytes, length, prefix, prefix, prefix_length);
    free(bytes);
    free(prefix);

    bytes = repeat("ab", "\xF0\x9F\x98\x80", 100, &length);
    prefix = repeat("ab", "\xF0\x9F\x98\x80", 49, &prefix_length);
    ck_assert_uint_eq(prefix_length, 198);
    assert_hashed(bytes, length, prefix, prefix, prefix_length);
    free(bytes);
    free(prefix);
}
END_TEST

START_TEST(test_bad_hashed_names)
{
    static const char *const names[] = {
        "%~0123456789abcdef.json",         /* empty prefix */
        "abc%~0123456789ABCDEF.json",      /* uppercase hash */
        "abc%~0123456789abcde.json",       /* 15 digits */
        "abc%~0123456789abcdef0.json",     /* 17 digits */
        "%41bc%~0123456789abcdef.json",    /* needless escape in the prefix */
        ".bc%~0123456789abcdef.json",      /* unescaped leading '.' */
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *prefix = NULL;
        size_t prefix_length;
        uint64_t hash;
        assert_scratch(names[i]);
        ck_assert_int_eq(object_name_hashed_parts(names[i], &prefix, &prefix_length, &hash),
                         -EINVAL);
        ck_assert_ptr_null(prefix);
    }

    /* A prefix longer than 200 bytes is never written. */
    size_t length;
    char *bytes = repeat("", "a", 201, &length);
    char name[OBJECT_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s%%~0123456789abcdef.json", bytes);
    assert_scratch(name);
    free(bytes);

    char *prefix = NULL;
    size_t prefix_length;
    uint64_t hash;
    ck_assert_int_eq(object_name_hashed_parts("abc.json", &prefix, &prefix_length, &hash), -EINVAL);
    ck_assert_int_eq(object_name_hashed_parts("42.json", &prefix, &prefix_length, &hash), -EINVAL);
    ck_assert_int_eq(object_name_hashed_parts("a1.json~", &prefix, &prefix_length, &hash), -EINVAL);
    ck_assert_ptr_null(prefix);
}
END_TEST

/* Characters that stress the escaping, whole UTF-8 characters of every
 * length, and plain letters. */
static const char *const test_pieces[] = {
    "%", "/", ".", "-", "~", "#", " ", "0", "1", "9", "a", "f", "A", "z",
    "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF",
};

/* A random string _id; some are numbers or ObjectIds written as strings,
 * and lengths reach past the hashed-name limit. */
static json_t *random_string_id(test_random *random)
{
    char text[1200];
    size_t length = 0;
    size_t shape = test_random_below(random, 10);
    if (shape == 0)
        return json_sprintf("%lld", (long long)test_random_next(random));
    if (shape == 1) {
        for (size_t i = 0; i < 24; i++)
            text[i] = "0123456789abcdef"[test_random_below(random, 16)];
        return json_stringn(text, 24);
    }
    size_t pieces = 1 + test_random_below(random, shape == 2 ? 300 : 40);
    for (size_t i = 0; i < pieces; i++) {
        size_t which = test_random_below(random, sizeof test_pieces / sizeof test_pieces[0] + 1);
        if (which == sizeof test_pieces / sizeof test_pieces[0]) {
            text[length++] = '\0';
            continue;
        }
        size_t piece_length = strlen(test_pieces[which]);
        memcpy(text + length, test_pieces[which], piece_length);
        length += piece_length;
    }
    return json_stringn(text, length);
}

static json_t *random_id(test_random *random)
{
    switch (test_random_below(random, 4)) {
    case 0:
        return json_integer((json_int_t)test_random_next(random));
    case 1: {
        uint8_t bytes[VALUE_OBJECT_ID_SIZE];
        for (size_t i = 0; i < VALUE_OBJECT_ID_SIZE; i++)
            bytes[i] = (uint8_t)test_random_next(random);
        return value_new_object_id(bytes);
    }
    default:
        return random_string_id(random);
    }
}

static void assert_hashed_name_matches(const char *name, const json_t *id)
{
    char *prefix;
    size_t prefix_length;
    uint64_t hash;
    ck_assert_int_eq(object_name_hashed_parts(name, &prefix, &prefix_length, &hash), 0);
    ck_assert(json_is_string(id));
    ck_assert_uint_gt(prefix_length, 0);
    ck_assert_uint_lt(prefix_length, json_string_length(id));
    ck_assert_mem_eq(prefix, json_string_value(id), prefix_length);
    ck_assert_uint_eq(hash, object_name_hash(json_string_value(id), json_string_length(id)));
    free(prefix);
}

START_TEST(test_random_ids_round_trip)
{
    test_random random = {UINT64_C(0x9e3779b97f4a7c15)};
    size_t hashed_count = 0;
    for (int round = 0; round < 20000; round++) {
        json_t *id = random_id(&random);
        ck_assert_ptr_nonnull(id);
        char name[OBJECT_NAME_MAX + 1];
        ck_assert_int_eq(object_name_from_id(id, name), 0);
        size_t length = strlen(name);
        ck_assert_uint_le(length, OBJECT_NAME_MAX);
        ck_assert_ptr_null(strchr(name, '/'));
        ck_assert_str_eq(name + length - 5, ".json");

        json_t *decoded = NULL;
        object_name_kind kind = object_name_classify(name, &decoded);
        if (kind == OBJECT_NAME_HASHED) {
            hashed_count++;
            assert_hashed_name_matches(name, id);
        } else {
            ck_assert_int_eq(kind, OBJECT_NAME_ID);
            ck_assert_msg(json_equal(decoded, id), "%s does not read back", name);
        }
        json_decref(decoded);
        json_decref(id);
    }
    ck_assert_uint_gt(hashed_count, 100);
}
END_TEST

/* The other direction: every name that decodes to an _id is that _id's
 * only name, so a directory cannot show one object twice. */
START_TEST(test_random_names_are_canonical)
{
    static const char *const pieces[] = {
        "%", "%2", "%2E", "%2F", "%25", "%00", "%41", "%~", "%C3%A9", "\xC3\xA9", ".", "/",
        "-", "0", "1", "7", "a", "f", "A", "F", "~",
    };
    test_random random = {UINT64_C(0x2545f4914f6cdd1d)};
    size_t id_count = 0;
    for (int round = 0; round < 50000; round++) {
        char name[OBJECT_NAME_MAX + 1] = "";
        size_t count = 1 + test_random_below(&random, 8);
        for (size_t i = 0; i < count; i++)
            strcat(name, pieces[test_random_below(&random, sizeof pieces / sizeof pieces[0])]);
        strcat(name, ".json");

        json_t *id = NULL;
        if (object_name_classify(name, &id) != OBJECT_NAME_ID)
            continue;
        id_count++;
        char encoded[OBJECT_NAME_MAX + 1];
        ck_assert_int_eq(object_name_from_id(id, encoded), 0);
        ck_assert_str_eq(encoded, name);
        json_decref(id);
    }
    ck_assert_uint_gt(id_count, 1000);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("object_name");
    TCase *names = tcase_create("names");
    tcase_add_test(names, test_int_names);
    tcase_add_test(names, test_non_canonical_numbers_are_strings);
    tcase_add_test(names, test_object_id_names);
    tcase_add_test(names, test_string_escapes);
    tcase_add_test(names, test_scratch_names);
    tcase_add_test(names, test_names_longer_than_a_file_name_are_scratch);
    tcase_add_test(names, test_classify_without_id);
    tcase_add_test(names, test_ids_without_a_name);
    suite_add_tcase(suite, names);

    TCase *hashed = tcase_create("hashed");
    tcase_add_test(hashed, test_hash_vectors);
    tcase_add_test(hashed, test_longest_plain_name);
    tcase_add_test(hashed, test_hashed_names);
    tcase_add_test(hashed, test_hashed_prefix_keeps_whole_characters);
    tcase_add_test(hashed, test_bad_hashed_names);
    suite_add_tcase(suite, hashed);

    TCase *properties = tcase_create("properties");
    tcase_add_test(properties, test_random_ids_round_trip);
    tcase_add_test(properties, test_random_names_are_canonical);
    suite_add_tcase(suite, properties);
    return suite;
}

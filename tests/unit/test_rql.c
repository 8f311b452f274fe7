/*
 * Unit tests for the Realm Query Language module (rql.h).
 */
#include "realmfs/rql.h"
#include "realmfs/ejson.h"
#include "realmfs/value.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OBJECT_ID_TEXT "5f3a0000000000000000000a"
#define UUID_TEXT "0123abcd-0000-4000-8000-00000000beef"
#define CREATED_MS INT64_C(1700000000123) /* 2023-11-14T22:13:20.123Z */

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                  */

static void set_new(json_t *document, const char *key, json_t *value)
{
    ck_assert_ptr_nonnull(value);
    ck_assert_int_eq(json_object_set_new(document, key, value), 0);
}

static json_t *load_json(const char *text)
{
    json_error_t error;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &error);
    ck_assert_msg(value != NULL, "bad test JSON %s: %s", text, error.text);
    return value;
}

static void decode_hex(const char *hex, uint8_t *bytes, size_t size)
{
    for (size_t index = 0; index < size; index++) {
        unsigned byte;
        ck_assert_int_eq(sscanf(hex + 2 * index, "%2x", &byte), 1);
        bytes[index] = (uint8_t)byte;
    }
}

static json_t *new_object_id(const char *hex)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    decode_hex(hex, bytes, sizeof bytes);
    return value_new_object_id(bytes);
}

static json_t *new_uuid(const char *text)
{
    char hex[33];
    size_t length = 0;
    for (const char *c = text; *c; c++)
        if (*c != '-')
            hex[length++] = *c;
    hex[length] = '\0';
    uint8_t bytes[VALUE_UUID_SIZE];
    decode_hex(hex, bytes, sizeof bytes);
    return value_new_uuid(bytes);
}

/* The document most tests query: every value type, lists, an embedded
 * document, null and odd strings. */
static json_t *make_document(void)
{
    json_t *document = load_json(
        "{\"name\": \"Alice\", \"age\": 30, \"score\": 4.5, \"active\": true, \"nothing\": null,"
        " \"nick\": \"\xc3\x89LODIE\", \"greek\": \"\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91\","
        " \"cyrillic\": \"\xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90\","
        " \"long_s\": \"pa\xc5\xbf\", \"umlaut\": \"\xc5\xb8\","
        " \"tags\": [\"red\", \"green\", \"blue\"], \"numbers\": [1, 5, 10], \"empty\": [],"
        " \"mixed\": [1, \"one\", null],"
        " \"address\": {\"city\": \"Paris\", \"geo\": {\"zip\": \"75001\"}},"
        " \"star\": \"a*b\", \"question\": \"a?b\", \"backslash\": \"a\\\\\","
        " \"escaped\": \"a\\\"b'c\\\\d\\n\\t\", \"accent\": \"\xc3\xa9\","
        " \"emoji\": \"\xf0\x9f\x98\x80\", \"sort\": 5, \"text\": \"plain\"}");
    set_new(document, "nul", json_stringn("a\0b", 3));
    set_new(document, "price", value_new_decimal("10.25"));
    set_new(document, "ratio", value_new_double(NAN));
    set_new(document, "big", value_new_double(INFINITY));
    set_new(document, "_id", new_object_id(OBJECT_ID_TEXT));
    set_new(document, "uuid", new_uuid(UUID_TEXT));
    set_new(document, "created", value_new_date(CREATED_MS));
    set_new(document, "old", value_new_date(-1500));
    set_new(document, "leap", value_new_date(INT64_C(1709164800000))); /* 2024-02-29 */
    set_new(document, "data", value_new_binary("abc", 3, 0));
    return document;
}

static rql_query *parse_with(const char *text, const json_t *arguments, const json_t *schema)
{
    rql_error error;
    rql_query *query = rql_parse(text, arguments, schema, &error);
    ck_assert_msg(query != NULL, "parse \"%s\": %s", text, error.message);
    return query;
}

static bool matches_with(const char *text, const json_t *arguments, const json_t *document)
{
    rql_query *query = parse_with(text, arguments, NULL);
    bool result = rql_matches(query, document);
    rql_free(query);
    return result;
}

typedef struct match_case {
    const char *query;
    bool expected;
} match_case;

static void check_matches(const match_case *cases, size_t count)
{
    json_t *document = make_document();
    for (size_t index = 0; index < count; index++)
        ck_assert_msg(matches_with(cases[index].query, NULL, document) == cases[index].expected,
                      "\"%s\" should be %s", cases[index].query,
                      cases[index].expected ? "true" : "false");
    json_decref(document);
}

#define CHECK_MATCHES(cases) check_matches(cases, sizeof cases / sizeof cases[0])

typedef struct refusal_case {
    const char *query;
    size_t position;
    const char *reason; /* a fragment of the message */
} refusal_case;

static void check_refused_with(const refusal_case *refusal, const json_t *arguments,
                               const json_t *schema)
{
    rql_error error;
    rql_query *query = rql_parse(refusal->query, arguments, schema, &error);
    ck_assert_msg(query == NULL, "\"%s\" should be refused", refusal->query);
    ck_assert_msg(error.position == refusal->position, "\"%s\": position %zu, expected %zu (%s)",
                  refusal->query, error.position, refusal->position, error.message);
    ck_assert_msg(strstr(error.message, refusal->reason) != NULL,
                  "\"%s\": message \"%s\" lacks \"%s\"", refusal->query, error.message,
                  refusal->reason);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "byte %zu: ", refusal->position);
    ck_assert_msg(strncmp(error.message, prefix, strlen(prefix)) == 0,
                  "\"%s\": message \"%s\" does not start with \"%s\"", refusal->query,
                  error.message, prefix);
}

static void check_refusals(const refusal_case *cases, size_t count, const json_t *arguments,
                           const json_t *schema)
{
    for (size_t index = 0; index < count; index++)
        check_refused_with(&cases[index], arguments, schema);
}

#define CHECK_REFUSALS(cases, arguments, schema) \
    check_refusals(cases, sizeof cases / sizeof cases[0], arguments, schema)

static char *describe_with(const char *text, const json_t *arguments)
{
    rql_query *query = parse_with(text, arguments, NULL);
    char *description = rql_describe(query);
    ck_assert_ptr_nonnull(description);
    rql_free(query);
    return description;
}

static void check_describes_with(const char *text, const json_t *arguments, const char *expected)
{
    char *description = describe_with(text, arguments);
    ck_assert_msg(strcmp(description, expected) == 0, "\"%s\" described as \"%s\", expected \"%s\"",
                  text, description, expected);
    free(description);
}

/* ------------------------------------------------------------------------ */
/* Operators and literals                                                    */

START_TEST(test_comparison_operators)
{
    static const match_case cases[] = {
        {"age == 30", true},     {"age = 30", true},      {"age == 31", false},
        {"age != 31", true},     {"age <> 31", true},     {"age != 30", false},
        {"age <> 30", false},    {"age < 31", true},      {"age < 30", false},
        {"age <= 30", true},     {"age <= 29", false},    {"age > 29", true},
        {"age > 30", false},     {"age >= 30", true},     {"age >= 31", false},
        {"30 == age", true},     {"31 > age", true},      {"29 >= age", false},
        {"age==30", true},       {"age<>31", true},       {"age<=30&&age>=30", true},
        {"name < \"Bob\"", true}, {"name > \"Al\"", true}, {"name <= \"Alice\"", true},
        {"\"Z\" < \"a\"", true}, {"1 == 1", true},        {"1 == 2", false},
        {"\"a\" < \"b\"", true}, {"age == age", true},    {"age < score", false},
        {"score < age", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_numeric_literals)
{
    static const match_case cases[] = {
        {"age == 0x1E", true},      {"age == 0X1e", true},       {"-5 < age", true},
        {"+30 == age", true},       {"age > -0x10", true},       {"age == 30.0", true},
        {"age == 3e1", true},       {"age == 30.", true},        {"score == 4.5", true},
        {"score == 4.50", true},    {"score > 4.49e0", true},    {"score < 45e-1", false},
        {"score == 45E-1", true},   {"score > 4", true},         {"score < 5", true},
        {"price == 10.25", true},   {"price > 10", true},        {"price < 10.5", true},
        {"price != 10", true},      {"age < price", false},      {"price < age", true},
        {"price BETWEEN {10, 11}", true}, {"age == 9223372036854775807", false},
        {"-9223372036854775808 < age", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_non_finite_numbers)
{
    static const match_case cases[] = {
        {"big == inf", true},       {"big == infinity", true},   {"big == INF", true},
        {"big > 1e308", true},      {"-inf < age", true},        {"big == -inf", false},
        {"age < inf", true},        {"ratio == nan", false},     {"ratio != nan", true},
        {"ratio < 1", false},       {"ratio > 1", false},        {"ratio >= ratio", false},
        {"ratio == ratio", false},  {"age == nan", false},       {"age != NaN", true},
        {"nan == nan", false},      {"-nan == nan", false},      {"ratio BETWEEN {-inf, inf}", false},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_string_literals)
{
    static const match_case cases[] = {
        {"escaped == \"a\\\"b'c\\\\d\\n\\t\"", true},
        {"escaped == 'a\"b\\'c\\\\d\\n\\t'", true},
        {"escaped == 'a\"b\\'c\\\\d\\u000a\\u0009'", true},
        {"accent == \"\\u00e9\"", true},
        {"accent == \"\\u00E9\"", true},
        {"accent == '\xc3\xa9'", true},
        {"emoji == \"\\uD83D\\uDE00\"", true},
        {"nul == \"a\\u0000b\"", true},
        {"nul == \"a\"", false},
        {"name == 'Alice'", true},
        {"name == \"\"", false},
        {"'' == \"\"", true},
        {"\"\\/\\b\\f\\r\" == '/\\u0008\\u000c\\u000d'", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_keywords_in_any_case)
{
    static const match_case cases[] = {
        {"age == 30 and name == 'Alice'", true},  {"age == 30 AnD name == 'Bob'", false},
        {"age == 1 or name == 'Alice'", true},    {"age == 1 oR name == 'Bob'", false},
        {"not age == 1", true},                   {"NoT age == 30", false},
        {"truepredicate", true},                  {"FalsePredicate", false},
        {"nothing == NULL", true},                {"nothing == Nil", true},
        {"active == TRUE", true},                 {"active == False", false},
        {"name beginsWith 'A'", true},            {"name endswith 'e'", true},
        {"name Contains 'lic'", true},            {"name like 'A*'", true},
        {"age between {1, 40}", true},            {"age In {30}", true},
        {"any tags == 'red'", true},              {"Some tags == 'red'", true},
        {"all tags == 'red'", false},             {"none tags == 'red'", false},
        {"big == Inf", true},                     {"_id == OID(" OBJECT_ID_TEXT ")", true},
        {"uuid == UUID(" UUID_TEXT ")", true},    {"data == b64\"YWJj\"", true},
        {"name ==[C] 'ALICE'", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_logic)
{
    static const match_case cases[] = {
        {"age == 30 AND name == 'Alice'", true},
        {"age == 30 && name == 'Bob'", false},
        {"age == 1 OR name == 'Alice'", true},
        {"age == 1 || name == 'Bob'", false},
        {"NOT age == 30", false},
        {"!age == 30", false},
        {"!(age == 1)", true},
        {"NOT NOT age == 30", true},
        {"! ! ! age == 30", false},
        {"age == 1 OR age == 30 AND name == 'Bob'", false},
        {"(age == 1 OR age == 30) AND name == 'Alice'", true},
        {"age == 30 OR age == 1 AND name == 'Bob'", true},
        {"NOT (age == 30 AND name == 'Bob')", true},
        {"NOT age == 30 OR name == 'Alice'", true},
        {"((((age == 30))))", true},
        {"TRUEPREDICATE", true},
        {"FALSEPREDICATE", false},
        {"NOT FALSEPREDICATE", true},
        {"TRUEPREDICATE AND FALSEPREDICATE", false},
        {"FALSEPREDICATE OR TRUEPREDICATE", true},
        {"age == 1 OR age == 2 OR age == 3 OR age == 30", true},
        {"age > 1 AND age > 2 AND age > 3 AND age > 30", false},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_string_operators)
{
    static const match_case cases[] = {
        {"name BEGINSWITH 'Al'", true},  {"name BEGINSWITH 'al'", false},
        {"name BEGINSWITH ''", true},    {"name BEGINSWITH 'Alice!'", false},
        {"name ENDSWITH 'ice'", true},   {"name ENDSWITH 'Ice'", false},
        {"name ENDSWITH ''", true},      {"name ENDSWITH 'xAlice'", false},
        {"name CONTAINS 'lic'", true},   {"name CONTAINS 'LIC'", false},
        {"name CONTAINS ''", true},      {"name CONTAINS 'Alice'", true},
        {"name CONTAINS 'ce!'", false},  {"age BEGINSWITH '3'", false},
        {"name BEGINSWITH 3", false},    {"nothing CONTAINS ''", false},
        {"missing CONTAINS ''", false},  {"'Alice' BEGINSWITH name", true},
        {"nul CONTAINS \"\\u0000\"", true}, {"nul ENDSWITH \"\\u0000b\"", true},
        {"tags BEGINSWITH 'gr'", true},  {"ALL tags CONTAINS 'e'", true},
        {"data BEGINSWITH 'a'", false},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_case_insensitive_modifier)
{
    static const match_case cases[] = {
        {"name ==[c] 'alice'", true},            {"name == 'alice'", false},
        {"name !=[c] 'ALICE'", false},           {"name !=[c] 'ALICEs'", true},
        {"name BEGINSWITH[c] 'AL'", true},       {"name ENDSWITH[c] 'ICE'", true},
        {"name CONTAINS[c] 'LIC'", true},        {"name LIKE[c] 'a*E'", true},
        {"name LIKE 'a*E'", false},              {"name ==[c] 'alic'", false},
        {"name ENDSWITH[c] 'XALICE'", false},    {"name CONTAINS[c] 'licx'", false},
        {"age ==[c] 30", true},                  {"age ==[c] '30'", false},
        /* Latin-1, Greek, Cyrillic */
        {"nick ==[c] '\xc3\xa9lodie'", true},    {"nick == '\xc3\xa9lodie'", false},
        {"greek ==[c] '\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1'", true},
        {"greek ENDSWITH[c] '\xce\xb9\xce\xb1'", true},
        {"cyrillic ==[c] '\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0'", true},
        /* Ÿ folds to ÿ; long s folds to s, one byte shorter */
        {"umlaut ==[c] '\xc3\xbf'", true},       {"long_s ==[c] 'PAS'", true},
        {"long_s ENDSWITH[c] 'AS'", true},       {"long_s BEGINSWITH[c] 'PAS'", true},
        {"long_s CONTAINS[c] 'S'", true},        {"long_s LIKE[c] 'p?S'", true},
        /* ß has no simple case folding */
        {"'\xc3\x9f' ==[c] 'ss'", false},
        {"'\xc4\xb0' ==[c] 'i'", false},
        {"tags ==[c] 'RED'", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_like_wildcards)
{
    static const match_case cases[] = {
        {"name LIKE '*'", true},           {"name LIKE 'Alice'", true},
        {"name LIKE 'A?ice'", true},       {"name LIKE 'A*'", true},
        {"name LIKE '*e'", true},          {"name LIKE '*lic*'", true},
        {"name LIKE 'A??ce'", true},       {"name LIKE 'A???ce'", false},
        {"name LIKE '?'", false},          {"name LIKE '*x*'", false},
        {"name LIKE 'A*c*e'", true},       {"name LIKE 'alice'", false},
        {"accent LIKE '?'", true},         {"emoji LIKE '?'", true},
        {"'abcabd' LIKE '*abd'", true},    {"'aaa' LIKE 'a*a*a'", true},
        {"'ab' LIKE 'a*a*'", false},       {"'' LIKE ''", true},
        {"'' LIKE '*'", true},             {"'' LIKE '?'", false},
        {"'a' LIKE ''", false},            {"'mississippi' LIKE '*sip*'", true},
        /* A backslash makes the next pattern character literal. */
        {"star LIKE 'a\\\\*b'", true},     {"'axb' LIKE 'a\\\\*b'", false},
        {"'aXXb' LIKE 'a*b'", true},       {"question LIKE 'a\\\\?b'", true},
        {"'axb' LIKE 'a\\\\?b'", false},   {"backslash LIKE 'a\\\\\\\\'", true},
        {"backslash LIKE 'a\\\\'", true},  {"'a\\\\b' LIKE 'a\\\\\\\\?'", true},
        {"age LIKE '*'", false},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_between)
{
    static const match_case cases[] = {
        {"age BETWEEN {30, 40}", true},             {"age BETWEEN {20, 30}", true},
        {"age BETWEEN {31, 40}", false},            {"age BETWEEN {10, 29}", false},
        {"age BETWEEN {29.5, 30.5}", true},         {"age BETWEEN {40, 20}", false},
        {"name BETWEEN {'A', 'B'}", true},          {"name BETWEEN {1, 100}", false},
        {"created BETWEEN {2023-01-01@00:00:00, 2024-01-01@00:00:00}", true},
        {"numbers BETWEEN {4, 6}", true},           {"ALL numbers BETWEEN {0, 10}", true},
        {"ALL numbers BETWEEN {2, 10}", false},     {"NONE numbers BETWEEN {20, 30}", true},
        {"missing BETWEEN {1, 2}", false},          {"5 BETWEEN {5, 5}", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_in)
{
    static const match_case cases[] = {
        {"age IN {1, 30}", true},                   {"age IN {1, 2}", false},
        {"age IN {}", false},                       {"name IN {'Bob', 'Alice'}", true},
        {"age IN {30.0}", true},                    {"age IN {'30'}", false},
        {"nothing IN {null}", true},                {"missing IN {1, null}", true},
        {"'red' IN tags", true},                    {"'pink' IN tags", false},
        {"5 IN numbers", true},                     {"5.0 IN numbers", true},
        {"tags IN {'red', 'x'}", true},             {"ALL tags IN {'red', 'green', 'blue'}", true},
        {"ALL tags IN {'red'}", false},             {"NONE tags IN {'x'}", true},
        {"NONE tags IN {'red'}", false},            {"ALL empty IN {1}", true},
        {"name IN tags", false},                    {"'Paris' IN address.city", true},
        {"'x' IN missing", false},                  {"'x' IN empty", false},
        {"30 IN {30}", true},                       {"null IN mixed", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_list_quantifiers)
{
    static const match_case cases[] = {
        {"tags == 'red'", true},            {"tags == 'pink'", false},
        {"tags != 'red'", true},            {"ANY tags == 'red'", true},
        {"SOME tags == 'blue'", true},      {"ALL tags == 'red'", false},
        {"ALL numbers > 0", true},          {"ALL numbers > 1", false},
        {"NONE numbers > 10", true},        {"NONE numbers > 5", false},
        {"numbers > 9", true},              {"numbers > 10", false},
        {"ANY empty == 1", false},          {"ALL empty == 1", true},
        {"NONE empty == 1", true},          {"empty == 1", false},
        {"ALL missing == 1", true},         {"ANY missing == 1", false},
        {"NONE missing == 1", true},        {"ALL nothing == 1", true},
        {"'red' == ANY tags", true},        {"5 < ALL numbers", false},
        {"0 < ALL numbers", true},          {"11 > ALL numbers", true},
        {"ANY age == 30", true},            {"ALL age == 30", true},
        {"NONE age == 30", false},          {"mixed == 'one'", true},
        {"ALL mixed != 2", true},           {"tags == tags", false},
        {"age == numbers", false},          {"10 == numbers", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_null_and_missing)
{
    static const match_case cases[] = {
        {"nothing == null", true},          {"missing == null", true},
        {"missing == nil", true},           {"null == missing", true},
        {"age == null", false},             {"age != null", true},
        {"missing != null", false},         {"missing != 5", true},
        {"nothing < 5", false},             {"nothing == 0", false},
        {"address.missing == null", true},  {"name.deeper == null", true},
        {"address.city.deeper == null", true}, {"missing.deeper == null", true},
        {"nothing == missing", true},       {"null == null", true},
        {"tags == null", false},            {"empty == null", false},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_type_mismatch_is_false)
{
    static const match_case cases[] = {
        {"name == 30", false},          {"name != 30", true},
        {"name < 30", false},           {"name > 30", false},
        {"age == '30'", false},         {"active == 1", false},
        {"active == true", true},       {"_id == '" OBJECT_ID_TEXT "'", false},
        {"created > 5", false},         {"created < 'z'", false},
        {"address == 'x'", false},      {"address != 'x'", true},
        {"address BEGINSWITH 'P'", false}, {"uuid == oid(" OBJECT_ID_TEXT ")", false},
        {"data == 'abc'", false},       {"price == 'x'", false},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_object_id_uuid_date_binary)
{
    static const match_case cases[] = {
        {"_id == oid(" OBJECT_ID_TEXT ")", true},
        {"_id == oid(5F3A0000000000000000000A)", true},
        {"_id != oid(5f3a0000000000000000000b)", true},
        {"_id > oid(000000000000000000000000)", true},
        {"_id IN {oid(5f3a0000000000000000000b), oid(" OBJECT_ID_TEXT ")}", true},
        {"uuid == uuid(" UUID_TEXT ")", true},
        {"uuid == uuid(0123ABCD-0000-4000-8000-00000000BEEF)", true},
        {"uuid == uuid(0123abcd-0000-4000-8000-00000000beee)", false},
        {"created == T1700000000:123000000", true},
        {"created == T1700000000:123999999", true},
        {"created == T1700000000:124000000", false},
        {"created > 2023-11-14@22:13:20", true},
        {"created == 2023-11-14@22:13:20:123000000", true},
        {"created == 2023-11-14T22:13:20:123456789", true},
        {"created < 2023-11-14@22:13:21", true},
        {"created < 2024-01-01@00:00:00", true},
        {"created == 2023-11-14@22:13:20", false},
        {"old == T-1:-500000000", true},
        {"old == T-2:500000000", true},
        {"old == T-1:-499999999", true}, /* rounded down to -1500 ms */
        {"old == T-1:-500000001", false},
        {"old == 1969-12-31@23:59:58:500000000", true},
        {"old < T0:0", true},
        {"leap == 2024-02-29@00:00:00", true},
        {"leap == 2024-2-29@0:0:0", true},
        {"T-62135596800:0 == 0001-01-01@00:00:00", true},
        {"T253402300799:0 == 9999-12-31@23:59:59", true},
        {"T0:0 == 1970-01-01@00:00:00", true},
        {"T1:1 > T1:0", false},
        {"data == B64\"YWJj\"", true},
        {"data != B64\"YWJk\"", true},
        {"data == B64\"\"", false},
        {"B64\"\" == B64\"\"", true},
        {"B64\"YQ==\" < B64\"YWJj\"", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_dotted_paths)
{
    static const match_case cases[] = {
        {"address.city == 'Paris'", true},
        {"address.geo.zip == '75001'", true},
        {"address.geo.zip BEGINSWITH '75'", true},
        {"address.city == 'London'", false},
        {"tags.length == null", true},
        {"_id.oid == null", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

START_TEST(test_keywords_usable_as_fields)
{
    static const match_case cases[] = {
        {"sort == 5", true},
        {"text CONTAINS 'lai'", true},
        {"sort IN {5} AND text == 'plain'", true},
    };
    CHECK_MATCHES(cases);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */

START_TEST(test_parameters)
{
    json_t *arguments = load_json("[30, \"Alice\", [1, 30], [25, 35], \"red\"]");
    ck_assert_int_eq(json_array_append_new(arguments, value_new_date(CREATED_MS)), 0);
    ck_assert_int_eq(json_array_append_new(arguments, new_object_id(OBJECT_ID_TEXT)), 0);
    json_t *document = make_document();
    static const match_case cases[] = {
        {"age == $0", true},
        {"name == $1 AND age == $0", true},
        {"age IN $2", true},
        {"age BETWEEN $3", true},
        {"$4 IN tags", true},
        {"created == $5", true},
        {"_id == $6", true},
        {"age IN {$0, 1}", true},
        {"age > $0", false},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++)
        ck_assert_msg(matches_with(cases[index].query, arguments, document) == cases[index].expected,
                      "%s", cases[index].query);

    static const refusal_case refusals[] = {
        {"age == $7", 7, "parameter $7 is not bound (7 arguments given)"},
        {"age == $2", 7, "argument $2 is a list, which may only follow IN or BETWEEN"},
        {"age IN $0", 7, "argument $0 is not a list"},
        {"age IN {$2}", 8, "argument $2 is a list"},
        {"age == $", 7, "expected a parameter number"},
    };
    CHECK_REFUSALS(refusals, arguments, NULL);

    static const refusal_case unbound[] = {{"age == 1 AND name == $0", 21,
                                            "parameter $0 is not bound (0 arguments given)"}};
    CHECK_REFUSALS(unbound, NULL, NULL);
    json_t *nested = load_json("[{\"a\": 1}, [[1]]]");
    static const refusal_case documents[] = {
        {"age == $0", 7, "embedded document or a nested list"},
        {"age IN $1", 7, "embedded document or a nested list"},
    };
    CHECK_REFUSALS(documents, nested, NULL);
    json_decref(nested);
    json_decref(document);
    json_decref(arguments);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Refusals                                                                  */

START_TEST(test_refused_features)
{
    static const refusal_case cases[] = {
        {"age == 30 SORT(age ASC)", 10, "SORT is not supported in subscriptions"},
        {"TRUEPREDICATE DISTINCT(name)", 14, "DISTINCT is not supported in subscriptions"},
        {"TRUEPREDICATE LIMIT(5)", 14, "LIMIT is not supported in subscriptions"},
        {"age > 1 sort(age DESC) limit(1)", 8, "SORT is not supported"},
        {"name == 'x' INCLUDE(owner)", 12, "INCLUDE is not supported"},
        {"tags.@count > 1", 5, "'@count' is not supported in subscriptions"},
        {"tags.@size > 1", 5, "'@size' is not supported"},
        {"numbers.@sum > 1", 8, "'@sum' is not supported"},
        {"numbers.@avg > 1", 8, "'@avg' is not supported"},
        {"numbers.@min > 1", 8, "'@min' is not supported"},
        {"numbers.@max > 1", 8, "'@max' is not supported"},
        {"age.@type == 'int'", 4, "'@type' is not supported"},
        {"@links.Person.dog.@count > 0", 0, "'@links' is not supported"},
        {"SUBQUERY(items, $x, $x.price > 5).@count > 0", 0, "SUBQUERY is not supported"},
        {"name TEXT 'x'", 5, "full-text search (TEXT) is not supported"},
        {"location GEOWITHIN geoCircle([1, 2], 3)", 9, "GEOWITHIN"},
        {"tags == {1, 2}", 8, "a list {...} may only follow IN or BETWEEN"},
        {"{1, 2} IN tags", 0, "a list {...} may only follow IN or BETWEEN"},
        {"ANY tags == ANY numbers", 0, "one side of a comparison only"},
        {"ALL tags IN numbers", 12, "already means ANY"},
        {"'x' IN ANY tags", 7, "already means ANY"},
        {"ANY 5 == age", 4, "expected a list field after ANY, SOME, ALL or NONE, found '5'"},
        {"tags[0] == 1", 4, "only the [c] modifier"},
        {"name <[c] 'x'", 6, "[c] cannot follow <"},
        {"age IN[c] {1}", 6, "[c] cannot follow IN"},
        {"name ==[d] 'x'", 7, "unsupported modifier '[d]'"},
        {"name BEGINSWITH[cd] 'x'", 15, "unsupported modifier '[cd]'"},
        {"age BETWEEN {1}", 12, "BETWEEN needs exactly two values"},
        {"age BETWEEN {1, 2, 3}", 12, "BETWEEN needs exactly two values"},
        {"age BETWEEN 5", 12, "expected a list {low, high} after BETWEEN"},
        {"age IN 5", 7, "IN needs a list"},
    };
    CHECK_REFUSALS(cases, NULL, NULL);
}
END_TEST

START_TEST(test_syntax_errors)
{
    static const refusal_case cases[] = {
        {"", 0, "expected a field, a value or a parameter, found the end of the query"},
        {"   ", 3, "found the end of the query"},
        {"age", 3, "expected a comparison operator"},
        {"age == ", 7, "found the end of the query"},
        {"age = = 1", 6, "found '='"},
        {"age == 1 name == 2", 9, "expected AND, OR or the end of the query, found 'name'"},
        {"(age == 1", 9, "expected AND, OR or ')', found the end"},
        {"age == 1)", 8, "expected AND, OR or the end of the query, found ')'"},
        {"age == 1 AND", 12, "found the end"},
        {"NOT", 3, "found the end"},
        {"age > 1 +", 8, "unexpected character '+'"},
        {"name == 'x' #", 12, "unexpected character '#'"},
        {"name == 'x' & age == 1", 12, "unexpected character '&'"},
        {"age == 1 | age == 2", 9, "unexpected character '|'"},
        {"address. == 1", 8, "expected a field name after '.'"},
        {"-age == 1", 0, "expected a number after '-'"},
        {"-true == 1", 0, "expected a number after '-'"},
        {"name == \"abc", 8, "unterminated string"},
        {"name == 'abc\\'", 8, "unterminated string"},
        {"name == 'a\\qb'", 10, "unknown escape '\\q'"},
        {"name == '\\u12G4'", 9, "expected four hex digits after \\u"},
        {"name == \"\\uD800\"", 9, "high surrogate"},
        {"name == \"\\uD800\\u0041\"", 9, "high surrogate"},
        {"name == \"\\uDC00\"", 9, "low surrogate"},
        {"name == \"a\xff\"", 10, "invalid UTF-8 in a string"},
        {"name == \"\xc0\xaf\"", 9, "invalid UTF-8 in a string"},
        {"na\xffme == 1", 2, "invalid UTF-8 in a field name"},
        {"age == 99999999999999999999", 7, "does not fit in 64 bits"},
        {"age == 9223372036854775808", 7, "does not fit in 64 bits"},
        {"age == 0x8000000000000000", 7, "does not fit in 64 bits"},
        {"age == 1e999", 7, "number out of range"},
        {"age == 12abc", 7, "malformed number"},
        {"age == 1.2.3", 7, "malformed number"},
        {"age == 1e", 7, "malformed number"},
        {"age == 0x", 7, "malformed number"},
        {"_id == oid(123)", 7, "invalid ObjectId"},
        {"_id == oid(5f3a0000000000000000000g)", 7, "invalid ObjectId"},
        {"_id == oid(5f3a0000000000000000000a", 7, "invalid ObjectId"},
        {"u == uuid(1234)", 5, "invalid UUID"},
        {"u == uuid(0123abcd-0000-4000-8000-00000000beef0)", 5, "invalid UUID"},
        {"d == 2023-13-01@00:00:00", 5, "the month must be 1 to 12"},
        {"d == 2023-02-29@00:00:00", 5, "the day does not exist in that month"},
        {"d == 2023-04-31@00:00:00", 5, "the day does not exist in that month"},
        {"d == 2023-01-01@24:00:00", 5, "the time of day"},
        {"d == 0000-01-01@00:00:00", 5, "the year must be 0001 or later"},
        {"d == 2023-01-01", 5, "invalid timestamp"},
        {"d == 2023-01-01@00:00:00:1234567890", 5, "invalid timestamp"},
        {"d == T1:", 5, "invalid timestamp"},
        {"d == T1:1x", 5, "invalid timestamp"},
        {"d == T9999999999999999999:0", 5, "invalid timestamp"},
        {"d == T999999999999999999:0", 5, "timestamp out of range"},
        {"d == B64\"abc\"", 5, "invalid base64"},
        {"d == B64\"ab=c\"", 5, "invalid base64"},
        {"d == B64\"abc", 5, "unterminated B64"},
        {"age IN {1 2}", 10, "expected ',' or '}', found '2'"},
        {"age IN {1, age}", 11, "expected a value in the list, found 'age'"},
        {"age IN {1, 2", 12, "expected ',' or '}', found the end"},
        {"created.$date == 1", 8, "expected a field name after '.'"},
        {"NOT == 1", 4, "found '=='"},
        {"age == NOT", 7, "expected a field, a value or a parameter, found 'NOT'"},
        {"AND == 1", 0, "found 'AND'"},
    };
    CHECK_REFUSALS(cases, NULL, NULL);
}
END_TEST

START_TEST(test_nesting_limit)
{
    char text[1024];
    size_t length = 0;
    for (int index = 0; index < 150; index++)
        text[length++] = '(';
    strcpy(text + length, "age == 1");
    refusal_case parentheses = {text, 100, "nest more than 100 deep"};
    check_refused_with(&parentheses, NULL, NULL);

    length = 0;
    for (int index = 0; index < 150; index++) {
        memcpy(text + length, "NOT ", 4);
        length += 4;
    }
    strcpy(text + length, "age == 1");
    refusal_case negations = {text, 400, "nest more than 100 deep"};
    check_refused_with(&negations, NULL, NULL);

    length = 0;
    for (int index = 0; index < 100; index++)
        text[length++] = '(';
    strcpy(text + length, "age == 30");
    length = strlen(text);
    for (int index = 0; index < 100; index++)
        text[length++] = ')';
    text[length] = '\0';
    json_t *document = make_document();
    ck_assert(matches_with(text, NULL, document));
    json_decref(document);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Schema                                                                    */

static json_t *make_schema(void)
{
    return load_json(
        "{\"bsonType\": \"object\", \"title\": \"Item\", \"properties\": {"
        " \"_id\": {\"bsonType\": \"objectId\"},"
        " \"name\": {\"bsonType\": \"string\"},"
        " \"tags\": {\"bsonType\": \"array\", \"items\": {\"bsonType\": \"string\"}},"
        " \"labels\": {\"bsonType\": [\"array\", \"null\"], \"items\": {\"bsonType\": \"string\"}},"
        " \"address\": {\"bsonType\": \"object\", \"properties\": {"
        "   \"city\": {\"bsonType\": \"string\"},"
        "   \"geo\": {\"type\": \"object\", \"properties\": {\"zip\": {\"bsonType\": \"string\"}}}}},"
        " \"owner\": {\"bsonType\": \"objectId\"},"
        " \"items\": {\"bsonType\": \"array\", \"items\": {\"bsonType\": \"object\","
        "   \"properties\": {\"price\": {\"bsonType\": \"double\"}}}},"
        " \"meta\": {\"bsonType\": \"object\"}}}");
}

START_TEST(test_schema_accepts)
{
    json_t *schema = make_schema();
    static const char *const accepted[] = {
        "name == 'x'",
        "address.city == 'Paris'",
        "address.geo.zip BEGINSWITH '7'",
        "meta.anything.below == 1",
        "ANY tags == 'x'",
        "tags == 'x'",
        "'x' IN tags",
        "tags IN {'a', 'b'}",
        "ALL labels != 'x'",
        "name IN {'a'}",
        "owner == oid(" OBJECT_ID_TEXT ")",
        "tags == name",
        "TRUEPREDICATE",
    };
    for (size_t index = 0; index < sizeof accepted / sizeof accepted[0]; index++)
        rql_free(parse_with(accepted[index], NULL, schema));
    json_decref(schema);
}
END_TEST

START_TEST(test_schema_refusals)
{
    json_t *schema = make_schema();
    static const refusal_case cases[] = {
        {"colour == 'red'", 0, "field 'colour' is not in the schema"},
        {"name == 'x' OR colour == 'red'", 15, "field 'colour' is not in the schema"},
        {"address.zip == '1'", 0, "field 'address.zip' is not in the schema"},
        {"address.geo.town == '1'", 0, "field 'address.geo.town' is not in the schema"},
        {"owner.name == 'x'", 0,
         "'owner.name' goes through 'owner', which is not an embedded object (link traversal is "
         "not supported in subscriptions)"},
        {"items.price > 5", 0, "goes through 'items', which is not an embedded object"},
        {"name.first == 'x'", 0, "goes through 'name'"},
        {"ANY name == 'x'", 0, "'name' is not a list"},
        {"'x' == ALL name", 0, "'name' is not a list"},
        {"'x' IN name", 0, "'name' is not a list"},
        {"tags == labels", 0, "comparing two lists ('tags' and 'labels') is not supported"},
        {"ANY tags == labels", 0, "comparing two lists"},
        {"tags IN labels", 0, "comparing two lists"},
        {"tags BEGINSWITH labels", 0, "comparing two lists"},
    };
    CHECK_REFUSALS(cases, NULL, schema);
    json_decref(schema);

    /* Without a schema the same paths are accepted. */
    json_t *document = make_document();
    ck_assert(!matches_with("owner.name == 'x'", NULL, document));
    ck_assert(matches_with("colour == null", NULL, document));
    json_decref(document);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Visiting fields                                                           */

typedef struct visited_paths {
    char paths[8][32];
    size_t count;
    int stop_after; /* return 7 after this many visits; 0 for never */
} visited_paths;

static int record_path(const char *path, void *context)
{
    visited_paths *visited = context;
    ck_assert_uint_lt(visited->count, 8);
    snprintf(visited->paths[visited->count++], sizeof visited->paths[0], "%s", path);
    return visited->count == (size_t)visited->stop_after ? 7 : 0;
}

START_TEST(test_visit_fields)
{
    rql_query *query = parse_with("name == 'x' AND (address.city == 'y' OR name BEGINSWITH 'z') "
                                  "AND 'red' IN tags AND 1 == 1 AND ALL numbers > age",
                                  NULL, NULL);
    visited_paths visited = {0};
    ck_assert_int_eq(rql_visit_fields(query, record_path, &visited), 0);
    static const char *const expected[] = {"name", "address.city", "tags", "numbers", "age"};
    ck_assert_uint_eq(visited.count, 5);
    for (size_t index = 0; index < 5; index++)
        ck_assert_str_eq(visited.paths[index], expected[index]);

    visited_paths stopped = {.stop_after = 2};
    ck_assert_int_eq(rql_visit_fields(query, record_path, &stopped), 7);
    ck_assert_uint_eq(stopped.count, 2);
    rql_free(query);

    json_t *arguments = load_json("[1]");
    query = parse_with("TRUEPREDICATE AND 1 == $0", arguments, NULL);
    visited_paths none = {0};
    ck_assert_int_eq(rql_visit_fields(query, record_path, &none), 0);
    ck_assert_uint_eq(none.count, 0);
    rql_free(query);
    json_decref(arguments);
}
END_TEST

/* A date literal read once at parse time compares as value_compare does
 * (the same comparison with the literal in a second field): by
 * milliseconds with dates, never with anything else. */
START_TEST(test_date_literals_agree_with_fields)
{
    static const char *const relations[] = {"==", "!=", "<", "<=", ">", ">="};
    json_t *values = json_array();
    json_array_append_new(values, value_new_date(-1500));
    json_array_append_new(values, value_new_date(0));
    json_array_append_new(values, value_new_date(CREATED_MS));
    json_array_append_new(values, value_new_date(CREATED_MS + 1));
    json_array_append_new(values, json_integer(CREATED_MS));
    json_array_append_new(values, json_string("2023-11-14T22:13:20.123Z"));
    json_array_append_new(values, json_null());
    json_array_append_new(values, load_json("[1700000000123]"));
    size_t count = json_array_size(values);
    for (size_t field = 0; field < count; field++) {
        for (size_t literal = 0; literal < 4; literal++) {
            json_t *document = json_object();
            set_new(document, "value", json_incref(json_array_get(values, field)));
            set_new(document, "literal", json_incref(json_array_get(values, literal)));
            json_t *arguments = json_pack("[O]", json_array_get(values, literal));
            for (size_t index = 0; index < 6; index++) {
                char with_literal[64], reversed[64], with_field[64];
                snprintf(with_literal, sizeof with_literal, "value %s $0", relations[index]);
                snprintf(reversed, sizeof reversed, "$0 %s value", relations[index]);
                snprintf(with_field, sizeof with_field, "value %s literal", relations[index]);
                bool expected = matches_with(with_field, arguments, document);
                ck_assert_msg(matches_with(with_literal, arguments, document) == expected,
                              "%s with value %zu, literal %zu", with_literal, field, literal);
                snprintf(with_field, sizeof with_field, "literal %s value", relations[index]);
                ck_assert_msg(matches_with(reversed, arguments, document) ==
                                  matches_with(with_field, arguments, document),
                              "%s with value %zu, literal %zu", reversed, field, literal);
            }
            json_decref(arguments);
            json_decref(document);
        }
    }
    json_decref(values);
}
END_TEST

START_TEST(test_add_fields)
{
    rql_query *query = parse_with("name == 'Alice' AND address.city == 'Paris' AND "
                                  "address.geo.zip BEGINSWITH '7' AND 'red' IN tags",
                                  NULL, NULL);
    rql_query *other = parse_with("age > 18 OR name ==[c] 'bob'", NULL, NULL);
    ejson_field_set *fields = ejson_field_set_new();
    ck_assert_ptr_nonnull(fields);
    ck_assert_int_eq(rql_add_fields(query, fields), 0);
    ck_assert_int_eq(rql_add_fields(other, fields), 0);

    json_t *whole = make_document();
    char *text = json_dumps(whole, JSON_COMPACT);
    ck_assert_ptr_nonnull(text);
    ejson_error error;
    json_t *read = ejson_parse_fields(text, strlen(text), fields, &error);
    ck_assert_msg(read != NULL, "%s", error.message);
    ck_assert_uint_eq(json_object_size(read), 4);
    static const char *const expected[] = {"name", "age", "tags", "address"};
    for (size_t index = 0; index < 4; index++)
        ck_assert_msg(json_object_get(read, expected[index]) != NULL, "%s", expected[index]);
    ck_assert(rql_matches(query, read));
    ck_assert(rql_matches(other, read));
    json_decref(read);
    free(text);
    json_decref(whole);
    ejson_field_set_free(fields);
    rql_free(other);
    rql_free(query);

    query = parse_with("TRUEPREDICATE", NULL, NULL);
    fields = ejson_field_set_new();
    ck_assert_int_eq(rql_add_fields(query, fields), 0);
    read = ejson_parse_fields("{\"a\": 1}", 8, fields, &error);
    ck_assert_uint_eq(json_object_size(read), 0);
    ck_assert(rql_matches(query, read));
    json_decref(read);
    ejson_field_set_free(fields);
    rql_free(query);
}
END_TEST

/* A seeded xorshift generator, so that every run tests the same strings. */
typedef struct random_source {
    uint64_t state;
} random_source;

static uint64_t next_random(random_source *random)
{
    random->state ^= random->state << 13;
    random->state ^= random->state >> 7;
    random->state ^= random->state << 17;
    return random->state;
}

/* Pieces that fold in every way [c] knows: ASCII, Latin-1, long s, Greek
 * sigmas, letters with no simple folding, and bytes that are not UTF-8. */
static const char *const folding_pieces[] = {
    "r", "R", "e", "E", "p", "P", "o", "O", "t", "T", "s", "S", "k", "K", "i", " ",
    "\xc5\xbf", "\xc3\xa9", "\xc3\x89", "\xce\xa3", "\xcf\x83", "\xcf\x82", "\xc3\x9f",
    "\xc4\xb0", "\xc5\xb8", "\xc3\xbf", "\xd0\x9c", "\xd0\xbc", "\xff", "\xc3", "\xe2\x82",
    "*", "?", "\\",
};

static size_t random_folding_text(random_source *random, char *text, size_t pieces)
{
    size_t length = 0;
    for (size_t index = 0; index < pieces; index++) {
        const char *piece = folding_pieces[next_random(random) %
                                           (sizeof folding_pieces / sizeof folding_pieces[0])];
        memcpy(text + length, piece, strlen(piece));
        length += strlen(piece);
    }
    return length;
}

/* Part of text with the case of its ASCII letters flipped at random, so
 * that the folded operators often match. */
static size_t random_needle_from(random_source *random, const char *text, size_t length,
                                 char *needle)
{
    size_t start = length ? next_random(random) % (length + 1) : 0;
    size_t size = next_random(random) % (length - start + 1);
    for (size_t index = 0; index < size; index++) {
        char c = text[start + index];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        needle[index] = letter && next_random(random) % 2 ? (char)(c ^ 0x20) : c;
    }
    return size;
}

/* The LIKE pattern prefix + needle + suffix, the needle's wildcards and
 * backslashes escaped, so that it matches the needle literally. */
static size_t like_pattern(const char *prefix, const char *needle, size_t length,
                           const char *suffix, char *pattern)
{
    size_t size = 0;
    for (const char *c = prefix; *c; c++)
        pattern[size++] = *c;
    for (size_t index = 0; index < length; index++) {
        if (needle[index] == '*' || needle[index] == '?' || needle[index] == '\\')
            pattern[size++] = '\\';
        pattern[size++] = needle[index];
    }
    for (const char *c = suffix; *c; c++)
        pattern[size++] = *c;
    return size;
}

static bool string_query(const char *query, json_t *arguments, const json_t *document)
{
    return matches_with(query, arguments, document);
}

static bool is_utf8(const char *text, size_t length)
{
    json_t *string = json_stringn(text, length);
    json_decref(string);
    return string != NULL;
}

/* text OPERATOR needle: with the needle a literal ($0, folded when the
 * query is parsed) and a field (folded while matching) the answers agree,
 * and they agree with the same test written as a LIKE pattern.  LIKE goes
 * by characters, the operators without [c] by bytes: those two agree only
 * on well-formed UTF-8. */
static void check_folding_agrees(const char *text, size_t text_length, const char *needle,
                                 size_t needle_length)
{
    static const struct {
        const char *with_literal;
        const char *with_field;
        const char *like;
        const char *like_prefix;
        const char *like_suffix;
        bool by_bytes;
    } operators[] = {
        {"text ==[c] $0", "text ==[c] needle", "text LIKE[c] $1", "", "", false},
        {"$0 ==[c] text", "needle ==[c] text", "text LIKE[c] $1", "", "", false},
        {"text BEGINSWITH[c] $0", "text BEGINSWITH[c] needle", "text LIKE[c] $1", "", "*", false},
        {"text ENDSWITH[c] $0", "text ENDSWITH[c] needle", "text LIKE[c] $1", "*", "", false},
        {"text CONTAINS[c] $0", "text CONTAINS[c] needle", "text LIKE[c] $1", "*", "*", false},
        {"text CONTAINS $0", "text CONTAINS needle", "text LIKE $1", "*", "*", true},
        {"text BEGINSWITH $0", "text BEGINSWITH needle", "text LIKE $1", "", "*", true},
        {"text ENDSWITH $0", "text ENDSWITH needle", "text LIKE $1", "*", "", true},
    };
    bool well_formed = is_utf8(text, text_length) && is_utf8(needle, needle_length);
    json_t *document = json_object();
    set_new(document, "text", json_stringn_nocheck(text, text_length));
    set_new(document, "needle", json_stringn_nocheck(needle, needle_length));
    for (size_t index = 0; index < sizeof operators / sizeof operators[0]; index++) {
        char pattern[512];
        size_t pattern_length = like_pattern(operators[index].like_prefix, needle, needle_length,
                                             operators[index].like_suffix, pattern);
        json_t *arguments = json_array();
        json_array_append_new(arguments, json_stringn_nocheck(needle, needle_length));
        json_array_append_new(arguments, json_stringn_nocheck(pattern, pattern_length));
        bool literal = string_query(operators[index].with_literal, arguments, document);
        bool field = string_query(operators[index].with_field, arguments, document);
        bool like = operators[index].by_bytes && !well_formed
                        ? field
                        : string_query(operators[index].like, arguments, document);
        ck_assert_msg(literal == field && field == like,
                      "\"%.*s\" %s \"%.*s\": literal %d, field %d, LIKE %d", (int)text_length,
                      text, operators[index].with_literal, (int)needle_length, needle, literal,
                      field, like);
        json_decref(arguments);
    }
    json_decref(document);
}

START_TEST(test_case_folding_agrees)
{
    random_source random = {0x6a09e667f3bcc908u};
    for (int round = 0; round < 1500; round++) {
        char text[256], needle[256];
        size_t text_length = random_folding_text(&random, text, next_random(&random) % 12);
        size_t needle_length =
            next_random(&random) % 4
                ? random_needle_from(&random, text, text_length, needle)
                : random_folding_text(&random, needle, next_random(&random) % 4);
        check_folding_agrees(text, text_length, needle, needle_length);
    }
    /* a needle that starts over and over before it matches */
    const char *text = "rErEpRePoRrEpOrTs";
    check_folding_agrees(text, strlen(text), "report", 6);
    check_folding_agrees(text, strlen(text), "REPORTS", 7);
    check_folding_agrees(text, strlen(text), "reports!", 8);
    check_folding_agrees("pa\xc5\xbf", 4, "PAS", 3);
    check_folding_agrees("\xce\xa3\xcf\x82", 4, "\xcf\x83\xcf\x83", 4);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Describing                                                                */

START_TEST(test_describe_canonical_form)
{
    static const struct {
        const char *query;
        const char *expected;
    } cases[] = {
        {"age = 30 and name == 'Alice'", "age == 30 AND name == \"Alice\""},
        {"a <> 1 || !(b == 2 && c == 3)", "a != 1 OR NOT (b == 2 AND c == 3)"},
        {"(a == 1 OR b == 2) AND c == 3", "(a == 1 OR b == 2) AND c == 3"},
        {"a == 1 OR (b == 2 AND c == 3)", "a == 1 OR b == 2 AND c == 3"},
        {"(a == 1 AND b == 2) AND c == 3", "a == 1 AND b == 2 AND c == 3"},
        {"NOT (a == 1 OR b == 2)", "NOT (a == 1 OR b == 2)"},
        {"not not a == 1", "NOT NOT a == 1"},
        {"'x' IN tags", "ANY tags == \"x\""},
        {"some tags == 'x'", "ANY tags == \"x\""},
        {"5 < all numbers", "5 < ALL numbers"},
        {"none tags == 'x'", "NONE tags == \"x\""},
        {"name beginswith[C] 'a'", "name BEGINSWITH[c] \"a\""},
        {"name endswith 'a' or name contains[c] 'b' or name like 'c*'",
         "name ENDSWITH \"a\" OR name CONTAINS[c] \"b\" OR name LIKE \"c*\""},
        {"age in {1, 2.5, 'x', null, nil, true, false}",
         "age IN {1, 2.5, \"x\", null, null, true, false}"},
        {"age in {}", "age IN {}"},
        {"age between {1, 0x10}", "age BETWEEN {1, 16}"},
        {"d == 2023-11-14@22:13:20:123000000", "d == T1700000000:123000000"},
        {"d == T-1:-500000000", "d == T-1:-500000000"},
        {"d == T0:-1", "d == T0:-1000000"},
        {"_id == oid(5F3A0000000000000000000A)", "_id == oid(5f3a0000000000000000000a)"},
        {"u == uuid(0123ABCD-0000-4000-8000-00000000BEEF)",
         "u == uuid(0123abcd-0000-4000-8000-00000000beef)"},
        {"b == B64\"YWJj\"", "b == B64\"YWJj\""},
        {"x == 1.0", "x == 1.0"},
        {"x == 1e300", "x == 1e+300"},
        {"x == 0.1", "x == 0.1"},
        {"x == -0.0", "x == -0.0"},
        {"x == 1.5e-7", "x == 1.5e-07"},
        {"x == -inf OR x == +Infinity OR x == NaN", "x == -inf OR x == inf OR x == nan"},
        {"x == -0x10", "x == -16"},
        {"s == \"tab\\there \\\"q\\\" \\\\ \\u0001 'single'\"",
         "s == \"tab\\there \\\"q\\\" \\\\ \\u0001 'single'\""},
        {"s == 'line\\nbreak\\r'", "s == \"line\\nbreak\\u000d\""},
        {"s == '\xc3\xa9\\u00e9'", "s == \"\xc3\xa9\xc3\xa9\""},
        {"TRUEPREDICATE", "TRUEPREDICATE"},
        {"not falsepredicate", "NOT FALSEPREDICATE"},
        {"address.city == null", "address.city == null"},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++)
        check_describes_with(cases[index].query, NULL, cases[index].expected);
}
END_TEST

START_TEST(test_describe_substitutes_parameters)
{
    json_t *arguments = load_json("[30, \"Al\\\"ice\", [1, \"x\"], null, 2.5]");
    ck_assert_int_eq(json_array_append_new(arguments, value_new_date(CREATED_MS)), 0);
    ck_assert_int_eq(json_array_append_new(arguments, value_new_decimal("10.25")), 0);
    ck_assert_int_eq(json_array_append_new(arguments, value_new_double(-INFINITY)), 0);
    ck_assert_int_eq(json_array_append_new(arguments, value_new_binary("abc", 3, 0)), 0);
    check_describes_with("age == $0 AND name == $1 AND age IN $2 AND x == $3 AND y < $4 AND "
                         "d == $5 AND p == $6 AND z > $7 AND b == $8",
                         arguments,
                         "age == 30 AND name == \"Al\\\"ice\" AND age IN {1, \"x\"} AND "
                         "x == null AND y < 2.5 AND d == T1700000000:123000000 AND p == 10.25 AND "
                         "z > -inf AND b == B64\"YWJj\"");
    json_decref(arguments);
}
END_TEST

/* The description must parse back to a query that describes the same and
 * matches the same documents. */
START_TEST(test_describe_round_trip)
{
    static const char *const queries[] = {
        "age == 30 AND (name BEGINSWITH[c] 'a' OR NOT tags CONTAINS 'x')",
        "ALL numbers BETWEEN {0, 10} && 'red' IN tags || FALSEPREDICATE",
        "created > 2023-01-01@00:00:00 AND created < T1800000000:5",
        "score == 4.5 AND big == inf AND ratio != nan AND price > 10",
        "_id == oid(" OBJECT_ID_TEXT ") AND uuid == uuid(" UUID_TEXT ")",
        "data == B64\"YWJj\" AND nul == \"a\\u0000b\" AND emoji == '\\uD83D\\uDE00'",
        "escaped == \"a\\\"b'c\\\\d\\n\\t\"",
        "star LIKE 'a\\\\*b' AND NONE empty == 1 AND nothing == nil",
        "!(!(age == 30) || !(name == 'Alice'))",
        "address.geo.zip IN {'75001', 75001, 1.5, -0.0, true}",
        "age > -9223372036854775808 AND age < 0x7fffffffffffffff",
    };
    json_t *document = make_document();
    for (size_t index = 0; index < sizeof queries / sizeof queries[0]; index++) {
        rql_query *query = parse_with(queries[index], NULL, NULL);
        char *description = rql_describe(query);
        rql_query *again = parse_with(description, NULL, NULL);
        char *description_again = rql_describe(again);
        ck_assert_str_eq(description, description_again);
        ck_assert_msg(rql_matches(query, document) == rql_matches(again, document), "%s",
                      description);
        free(description);
        free(description_again);
        rql_free(query);
        rql_free(again);
    }
    json_decref(document);
}
END_TEST

START_TEST(test_error_cleared_on_success)
{
    rql_error error;
    memset(&error, 'x', sizeof error);
    rql_query *query = rql_parse("age == 1", NULL, NULL, &error);
    ck_assert_ptr_nonnull(query);
    ck_assert_str_eq(error.message, "");
    rql_free(query);
    rql_free(NULL);
}
END_TEST

static bool requires_equality(const char *text, const json_t *schema)
{
    rql_query *query = parse_with(text, NULL, schema);
    bool result = rql_requires_field_equality(query, "team");
    rql_free(query);
    return result;
}

START_TEST(test_requires_field_equality)
{
    ck_assert(requires_equality("team == 'a'", NULL));
    ck_assert(requires_equality("'a' == team", NULL));
    ck_assert(requires_equality("team IN {'a', 'b'}", NULL));
    ck_assert(requires_equality("owner == 'u' AND team == 'a'", NULL));
    ck_assert(requires_equality("(owner == 'u' AND (x > 1 AND team == 'a'))", NULL));
    ck_assert(requires_equality("team == 'a' AND (owner == 'u' OR owner == 'v')", NULL));

    ck_assert(!requires_equality("TRUEPREDICATE", NULL));
    ck_assert(!requires_equality("owner == 'u'", NULL));
    ck_assert(!requires_equality("team != 'a'", NULL));
    ck_assert(!requires_equality("team ==[c] 'a'", NULL));
    ck_assert(!requires_equality("team BEGINSWITH 'a'", NULL));
    ck_assert(!requires_equality("team == 'a' OR owner == 'u'", NULL));
    ck_assert(!requires_equality("NOT team == 'a'", NULL));
    ck_assert(!requires_equality("team.name == 'a'", NULL));
    ck_assert(!requires_equality("teams == 'a'", NULL));
    ck_assert(!requires_equality("team == owner", NULL));
    ck_assert(!requires_equality("ANY team == 'a'", NULL));

    /* A list field holding the value is not an equality on it. */
    json_t *schema = load_json("{\"properties\": {\"team\": {\"bsonType\": \"array\","
                               " \"items\": {\"bsonType\": \"string\"}}}}");
    ck_assert(!requires_equality("'a' IN team", schema));
    ck_assert(!requires_equality("team == 'a'", schema));
    json_decref(schema);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("rql");
    TCase *matching = tcase_create("matching");
    tcase_add_test(matching, test_comparison_operators);
    tcase_add_test(matching, test_numeric_literals);
    tcase_add_test(matching, test_non_finite_numbers);
    tcase_add_test(matching, test_string_literals);
    tcase_add_test(matching, test_keywords_in_any_case);
    tcase_add_test(matching, test_logic);
    tcase_add_test(matching, test_string_operators);
    tcase_add_test(matching, test_case_insensitive_modifier);
    tcase_add_test(matching, test_like_wildcards);
    tcase_add_test(matching, test_case_folding_agrees);
    tcase_add_test(matching, test_between);
    tcase_add_test(matching, test_in);
    tcase_add_test(matching, test_list_quantifiers);
    tcase_add_test(matching, test_null_and_missing);
    tcase_add_test(matching, test_type_mismatch_is_false);
    tcase_add_test(matching, test_object_id_uuid_date_binary);
    tcase_add_test(matching, test_date_literals_agree_with_fields);
    tcase_add_test(matching, test_dotted_paths);
    tcase_add_test(matching, test_keywords_usable_as_fields);
    tcase_add_test(matching, test_parameters);
    suite_add_tcase(suite, matching);

    TCase *refusals = tcase_create("refusals");
    tcase_add_test(refusals, test_refused_features);
    tcase_add_test(refusals, test_syntax_errors);
    tcase_add_test(refusals, test_nesting_limit);
    tcase_add_test(refusals, test_schema_accepts);
    tcase_add_test(refusals, test_schema_refusals);
    suite_add_tcase(suite, refusals);

    TCase *introspection = tcase_create("introspection");
    tcase_add_test(introspection, test_visit_fields);
    tcase_add_test(introspection, test_add_fields);
    tcase_add_test(introspection, test_describe_canonical_form);
    tcase_add_test(introspection, test_describe_substitutes_parameters);
    tcase_add_test(introspection, test_describe_round_trip);
    tcase_add_test(introspection, test_error_cleared_on_success);
    tcase_add_test(introspection, test_requires_field_equality);
    suite_add_tcase(suite, introspection);
    return suite;
}

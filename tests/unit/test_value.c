/*
 * Unit tests for the value model (value.h).
 */
#include "realmfs/ejson.h"
#include "realmfs/value.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Parse a value written as Extended JSON: {"v": <text>} and take "v". */
static json_t *V(const char *text)
{
    char doc[1024];
    snprintf(doc, sizeof doc, "{\"v\": %s}", text);
    ejson_error error;
    json_t *d = ejson_parse(doc, strlen(doc), &error);
    ck_assert_msg(d != NULL, "parse %s: %s", text, error.message);
    json_t *v = json_incref(json_object_get(d, "v"));
    json_decref(d);
    return v;
}

static json_t *D(const char *text)
{
    ejson_error error;
    json_t *d = ejson_parse(text, strlen(text), &error);
    ck_assert_msg(d != NULL, "parse %s: %s", text, error.message);
    return d;
}

#define OID1 "{\"$oid\": \"5f3a00000000000000000001\"}"
#define OID2 "{\"$oid\": \"5f3a00000000000000000002\"}"
#define UUID1 "{\"$uuid\": \"00000000-0000-0000-0000-000000000001\"}"
#define UUID2 "{\"$uuid\": \"ff000000-0000-0000-0000-000000000000\"}"

START_TEST(test_type_of)
{
    static const struct {
        const char *text;
        value_type type;
        const char *name;
    } cases[] = {
        {"null", VALUE_NULL, "null"},
        {"true", VALUE_BOOL, "bool"},
        {"false", VALUE_BOOL, "bool"},
        {"12", VALUE_INT, "long"},
        {"1.5", VALUE_DOUBLE, "double"},
        {"{\"$numberDouble\": \"NaN\"}", VALUE_DOUBLE, "double"},
        {"{\"$numberDecimal\": \"1.5\"}", VALUE_DECIMAL, "decimal"},
        {"\"x\"", VALUE_STRING, "string"},
        {OID1, VALUE_OBJECT_ID, "objectId"},
        {"{\"$date\": 0}", VALUE_DATE, "date"},
        {UUID1, VALUE_UUID, "uuid"},
        {"{\"$binary\": {\"base64\": \"AA==\", \"subType\": \"00\"}}", VALUE_BINARY, "binData"},
        {"[]", VALUE_ARRAY, "array"},
        {"{}", VALUE_DOCUMENT, "object"},
        {"{\"a\": 1}", VALUE_DOCUMENT, "object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = V(cases[i].text);
        ck_assert_msg(value_type_of(v) == cases[i].type, "%s", cases[i].text);
        ck_assert_str_eq(value_type_name(value_type_of(v)), cases[i].name);
        json_decref(v);
    }
}
END_TEST

START_TEST(test_constructors)
{
    json_t *v = value_new_double(1.5);
    ck_assert(json_is_real(v));
    json_decref(v);

    v = value_new_double(INFINITY);
    ck_assert_int_eq(value_type_of(v), VALUE_DOUBLE);
    ck_assert_str_eq(json_string_value(json_object_get(v, "$numberDouble")), "Infinity");
    json_decref(v);
    v = value_new_double(-INFINITY);
    ck_assert_str_eq(json_string_value(json_object_get(v, "$numberDouble")), "-Infinity");
    json_decref(v);
    v = value_new_double(NAN);
    ck_assert_str_eq(json_string_value(json_object_get(v, "$numberDouble")), "NaN");
    long double n;
    ck_assert(value_get_number(v, &n));
    ck_assert(isnan(n));
    json_decref(v);

    uint8_t oid[12] = {0x5f, 0x3a, 0, 1, 2, 3, 4, 5, 6, 7, 0xab, 0xcd};
    v = value_new_object_id(oid);
    ck_assert_int_eq(value_type_of(v), VALUE_OBJECT_ID);
    ck_assert_str_eq(json_string_value(json_object_get(v, "$oid")), "5f3a00010203040506" "07abcd");
    uint8_t back[16];
    ck_assert(value_get_object_id(v, back));
    ck_assert_mem_eq(back, oid, 12);
    ck_assert(!value_get_uuid(v, back));
    json_decref(v);

    v = value_new_date(-1234);
    int64_t ms;
    ck_assert_int_eq(value_type_of(v), VALUE_DATE);
    ck_assert(value_get_date(v, &ms));
    ck_assert_int_eq(ms, -1234);
    json_decref(v);

    uint8_t uuid[16];
    for (int i = 0; i < 16; i++)
        uuid[i] = (uint8_t)(0xf0 + i);
    v = value_new_uuid(uuid);
    ck_assert_str_eq(json_string_value(json_object_get(v, "$uuid")),
                     "f0f1f2f3-f4f5-f6f7-f8f9-fafbfcfdfeff");
    ck_assert(value_get_uuid(v, back));
    ck_assert_mem_eq(back, uuid, 16);
    ck_assert(!value_get_date(v, &ms));
    json_decref(v);

    v = value_new_decimal("-1.25E+10");
    ck_assert_int_eq(value_type_of(v), VALUE_DECIMAL);
    ck_assert(value_get_number(v, &n));
    ck_assert(n == -1.25e10L);
    json_decref(v);

    v = value_new_binary("hello", 5, 0x80);
    ck_assert_int_eq(value_type_of(v), VALUE_BINARY);
    json_t *inner = json_object_get(v, "$binary");
    ck_assert_str_eq(json_string_value(json_object_get(inner, "base64")), "aGVsbG8=");
    ck_assert_str_eq(json_string_value(json_object_get(inner, "subType")), "80");
    json_decref(v);

    v = value_new_binary("", 0, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "$binary"), "base64")), "");
    json_decref(v);

    /* Subtype 4 with 16 bytes is a UUID; with another size it stays binary. */
    v = value_new_binary(uuid, 16, 4);
    ck_assert_int_eq(value_type_of(v), VALUE_UUID);
    json_decref(v);
    v = value_new_binary(uuid, 15, 4);
    ck_assert_int_eq(value_type_of(v), VALUE_BINARY);
    json_decref(v);
}
END_TEST

START_TEST(test_get_number)
{
    long double n;
    json_t *v = V("42");
    ck_assert(value_get_number(v, &n));
    ck_assert(n == 42);
    json_decref(v);
    v = V("{\"$numberDouble\": \"-Infinity\"}");
    ck_assert(value_get_number(v, &n));
    ck_assert(isinf((double)n) && n < 0);
    json_decref(v);
    v = V("\"42\"");
    ck_assert(!value_get_number(v, &n));
    json_decref(v);
    v = V("{\"$date\": 5}");
    ck_assert(!value_get_number(v, &n));
    json_decref(v);
}
END_TEST

START_TEST(test_generate_object_id)
{
    uint8_t a[12], b[12];
    time_t now = time(NULL);
    value_generate_object_id(a);
    value_generate_object_id(b);
    uint32_t seconds = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    ck_assert((int64_t)seconds >= (int64_t)now - 1 && (int64_t)seconds <= (int64_t)now + 1);
    ck_assert_mem_eq(a + 4, b + 4, 5);   /* same process: same random part */
    uint32_t ca = (uint32_t)a[9] << 16 | (uint32_t)a[10] << 8 | a[11];
    uint32_t cb = (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
    ck_assert_uint_eq((ca + 1) & 0xffffff, cb);
}
END_TEST

#define THREADS 4
#define PER_THREAD 2000

static void *generate_many(void *arg)
{
    uint8_t(*ids)[12] = arg;
    for (int i = 0; i < PER_THREAD; i++)
        value_generate_object_id(ids[i]);
    return NULL;
}

static int compare_ids(const void *a, const void *b)
{
    return memcmp(a, b, 12);
}

START_TEST(test_generate_object_id_threads)
{
    static uint8_t ids[THREADS * PER_THREAD][12];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&threads[t], NULL, generate_many, ids[t * PER_THREAD]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    qsort(ids, THREADS * PER_THREAD, 12, compare_ids);
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        ck_assert_msg(memcmp(ids[i - 1], ids[i], 12) != 0, "duplicate ObjectId");
}
END_TEST

/* Expect compare(a, b) to give the sign, or to be incomparable (sign 2). */
static void expect_order(const char *a, const char *b, int sign)
{
    json_t *x = V(a), *y = V(b);
    int order = 99;
    bool ok = value_compare(x, y, &order);
    if (sign == 2) {
        ck_assert_msg(!ok, "%s vs %s should be incomparable", a, b);
    } else {
        ck_assert_msg(ok, "%s vs %s should be comparable", a, b);
        ck_assert_msg((order > 0) - (order < 0) == sign, "%s vs %s: %d, expected %d", a, b, order,
                      sign);
        /* And the reverse. */
        ck_assert(value_compare(y, x, &order));
        ck_assert_msg((order > 0) - (order < 0) == -sign, "%s vs %s reversed", a, b);
    }
    json_decref(x);
    json_decref(y);
}

START_TEST(test_compare_numbers)
{
    expect_order("1", "2", -1);
    expect_order("2", "2", 0);
    expect_order("-9223372036854775808", "9223372036854775807", -1);
    expect_order("1", "1.0", 0);
    expect_order("1", "1.5", -1);
    expect_order("2", "1.5", 1);
    expect_order("-0.0", "0", 0);
    expect_order("{\"$numberDecimal\": \"1.00\"}", "1", 0);
    expect_order("{\"$numberDecimal\": \"1.5\"}", "1.5", 0);
    expect_order("{\"$numberDecimal\": \"1E+3\"}", "999", 1);
    expect_order("{\"$numberDecimal\": \"-Infinity\"}", "-9223372036854775808", -1);
    expect_order("{\"$numberDouble\": \"Infinity\"}", "1e308", 1);
    expect_order("{\"$numberDouble\": \"Infinity\"}", "{\"$numberDecimal\": \"Infinity\"}", 0);
    /* 2^53 + 1 as an integer is above the double 2^53. */
    expect_order("9007199254740993", "9007199254740992.0", 1);
    expect_order("9007199254740993", "9007199254740992", 1);
    expect_order("9223372036854775807", "9223372036854775808.0", -1);
    expect_order("-9223372036854775808", "-9223372036854775808.0", 0);
    expect_order("-9223372036854775807", "-9223372036854775808.0", 1);
    expect_order("-9223372036854775808", "-1e19", 1);
    expect_order("3", "2.5", 1);
    expect_order("-3", "-2.5", -1);
    expect_order("-2", "-2.5", 1);
    expect_order("-2", "-2.0", 0);
    expect_order("9223372036854775807", "{\"$numberDouble\": \"Infinity\"}", -1);
    expect_order("-9223372036854775808", "{\"$numberDouble\": \"-Infinity\"}", 1);
    /* NaN is never ordered. */
    expect_order("{\"$numberDouble\": \"NaN\"}", "1", 2);
    expect_order("{\"$numberDouble\": \"NaN\"}", "{\"$numberDouble\": \"NaN\"}", 2);
    expect_order("{\"$numberDecimal\": \"NaN\"}", "1", 2);
}
END_TEST

START_TEST(test_compare_others)
{
    expect_order("null", "null", 0);
    expect_order("null", "0", 2);
    expect_order("null", "false", 2);
    expect_order("false", "true", -1);
    expect_order("true", "true", 0);
    expect_order("\"a\"", "\"b\"", -1);
    expect_order("\"ab\"", "\"a\"", 1);
    expect_order("\"a\"", "\"a\\u0000\"", -1);
    expect_order("\"a\\u0000b\"", "\"a\\u0000c\"", -1);
    expect_order("\"\"", "\"\"", 0);
    expect_order("\"Z\"", "\"a\"", -1);               /* bytes, not collation */
    expect_order("\"\\u00e9\"", "\"z\"", 1);           /* UTF-8 binary order */
    expect_order("\"1\"", "1", 2);
    expect_order(OID1, OID2, -1);
    expect_order("{\"$oid\": \"5F3A00000000000000000002\"}", OID2, 0);
    expect_order(UUID1, UUID2, -1);
    expect_order("{\"$date\": -1}", "{\"$date\": 1}", -1);
    expect_order("{\"$date\": \"2024-05-01T00:00:00Z\"}", "{\"$date\": 1714521600000}", 0);
    expect_order("{\"$date\": 0}", "0", 2);
    expect_order(OID1, UUID1, 2);
    expect_order("{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"00\"}}",
                 "{\"$binary\": {\"base64\": \"AQM=\", \"subType\": \"00\"}}", -1);
    expect_order("{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"00\"}}",
                 "{\"$binary\": {\"base64\": \"AQ==\", \"subType\": \"00\"}}", 1);
    expect_order("{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"00\"}}",
                 "{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"80\"}}", -1);
    expect_order("[1]", "[1]", 2);
    expect_order("{\"a\": 1}", "{\"a\": 1}", 2);
    expect_order("[1]", "1", 2);
}
END_TEST

static void expect_equal(const char *a, const char *b, bool equal)
{
    json_t *x = V(a), *y = V(b);
    ck_assert_msg(value_equal(x, y) == equal, "%s == %s should be %d", a, b, equal);
    ck_assert_msg(value_equal(y, x) == equal, "%s == %s (reversed) should be %d", b, a, equal);
    json_decref(x);
    json_decref(y);
}

START_TEST(test_equal)
{
    expect_equal("1", "1.0", true);
    expect_equal("1", "{\"$numberDecimal\": \"1.000\"}", true);
    expect_equal("1", "2", false);
    expect_equal("{\"$numberDouble\": \"NaN\"}", "{\"$numberDouble\": \"NaN\"}", true);
    expect_equal("{\"$numberDouble\": \"NaN\"}", "{\"$numberDecimal\": \"NaN\"}", true);
    expect_equal("{\"$numberDouble\": \"NaN\"}", "1", false);
    expect_equal("null", "null", true);
    expect_equal("null", "false", false);
    expect_equal("\"a\\u0000b\"", "\"a\\u0000b\"", true);
    expect_equal("\"a\\u0000b\"", "\"a\\u0000c\"", false);
    expect_equal("[1, \"x\", [2]]", "[1.0, \"x\", [2]]", true);
    expect_equal("[1, 2]", "[2, 1]", false);
    expect_equal("[1, 2]", "[1, 2, 3]", false);
    expect_equal("[]", "{}", false);
    expect_equal("{\"a\": 1, \"b\": {\"c\": [true]}}", "{\"b\": {\"c\": [true]}, \"a\": 1}", true);
    expect_equal("{\"a\": 1, \"b\": 2}", "{\"a\": 1}", false);
    expect_equal("{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"c\": 2}", false);
    expect_equal("{\"a\": null}", "{}", false);
    expect_equal(OID1, OID1, true);
    expect_equal(OID1, OID2, false);
    expect_equal(UUID1, UUID1, true);
    expect_equal("{\"$date\": 5}", "{\"$date\": 5}", true);
    expect_equal("{\"$date\": 5}", "5", false);
    expect_equal("{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"00\"}}",
                 "{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"0\"}}", true);
    expect_equal("{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"00\"}}",
                 "{\"$binary\": {\"base64\": \"AQI=\", \"subType\": \"01\"}}", false);
}
END_TEST

START_TEST(test_get_path)
{
    json_t *d = D("{\"a\": {\"b\": {\"c\": 3}, \"list\": [{\"x\": 1}], \"when\": {\"$date\": 0}},"
                  " \"top\": null, \"e\": {}}");
    json_t *v = value_get_path(d, "a.b.c");
    ck_assert(json_is_integer(v) && json_integer_value(v) == 3);
    ck_assert(json_is_object(value_get_path(d, "a.b")));
    ck_assert(json_is_null(value_get_path(d, "top")));
    ck_assert_int_eq(value_type_of(value_get_path(d, "a.when")), VALUE_DATE);
    ck_assert(value_get_path(d, "a.when.$date") == NULL);   /* not a document */
    ck_assert(value_get_path(d, "a.list") != NULL);
    ck_assert(value_get_path(d, "a.list.x") == NULL);       /* arrays are not descended */
    ck_assert(value_get_path(d, "a.list.0") == NULL);
    ck_assert(value_get_path(d, "a.b.c.d") == NULL);
    ck_assert(value_get_path(d, "a.missing") == NULL);
    ck_assert(value_get_path(d, "top.x") == NULL);
    ck_assert(value_get_path(d, "e.x") == NULL);
    ck_assert(value_get_path(d, "") == NULL);
    ck_assert(value_get_path(d, "a.") == NULL);
    ck_assert(value_get_path(d, ".a") == NULL);
    ck_assert(value_get_path(d, "a..b") == NULL);
    json_decref(d);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("value");
    TCase *tc = tcase_create("value");
    tcase_add_test(tc, test_type_of);
    tcase_add_test(tc, test_constructors);
    tcase_add_test(tc, test_get_number);
    tcase_add_test(tc, test_generate_object_id);
    tcase_add_test(tc, test_generate_object_id_threads);
    tcase_add_test(tc, test_compare_numbers);
    tcase_add_test(tc, test_compare_others);
    tcase_add_test(tc, test_equal);
    tcase_add_test(tc, test_get_path);
    suite_add_tcase(suite, tc);
    return suite;
}

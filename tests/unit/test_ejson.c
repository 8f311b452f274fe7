/*
 * Unit tests for Extended JSON reading and writing (ejson.h).
 */
#include "realmfs/ejson.h"
#include "realmfs/value.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse_ok(const char *text)
{
    ejson_error error;
    memset(&error, 0, sizeof error);
    json_t *v = ejson_parse(text, strlen(text), &error);
    ck_assert_msg(v != NULL, "parse %s: %s", text, error.message);
    return v;
}

static char *pretty(const json_t *v)
{
    size_t length = 0;
    char *text = ejson_format_pretty(v, &length);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(length, strlen(text));
    return text;
}

static char *line(const json_t *v)
{
    size_t length = 0;
    char *text = ejson_format_line(v, &length);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(length, strlen(text));
    return text;
}

/* parse(input) formats to expected on one line, and the pretty text is a
 * fixed point of parse + format. */
static void expect_line(const char *input, const char *expected)
{
    json_t *v = parse_ok(input);
    char *l = line(v);
    ck_assert_msg(strcmp(l, expected) == 0, "%s\n gave  %s\n wanted %s", input, l, expected);

    char *p = pretty(v);
    json_t *again = parse_ok(p);
    ck_assert_msg(value_equal(v, again), "round trip changed %s", input);
    char *p2 = pretty(again);
    ck_assert_str_eq(p, p2);
    json_t *from_line = parse_ok(l);
    char *p3 = pretty(from_line);
    ck_assert_str_eq(p, p3);
    free(p3);
    json_decref(from_line);
    free(p2);
    json_decref(again);
    free(p);
    free(l);
    json_decref(v);
}

static void expect_error(const char *input, const char *message)
{
    ejson_error error;
    memset(&error, 0x55, sizeof error);
    json_t *v = ejson_parse(input, strlen(input), &error);
    ck_assert_msg(v == NULL, "%s should not parse", input);
    ck_assert_msg(strcmp(error.message, message) == 0, "%s\n gave  %s\n wanted %s", input,
                  error.message, message);
    ck_assert_int_eq(error.line, 0);
    ck_assert_int_eq(error.column, 0);
}

static void expect_syntax_error(const char *input, int line_no, int column)
{
    ejson_error error;
    json_t *v = ejson_parse(input, strlen(input), &error);
    ck_assert_msg(v == NULL, "%s should not parse", input);
    ck_assert_msg(error.line == line_no && error.column == column, "%s: at %d:%d (%s), wanted %d:%d",
                  input, error.line, error.column, error.message, line_no, column);
    ck_assert(error.message[0] != '\0');
}

START_TEST(test_pretty_exact)
{
    json_t *v = parse_ok("{\"name\":\"Ann\",\"n\":1,\"tags\":[\"a\",{\"x\":null}],\"e\":{},\"l\":[],"
                         "\"id\":{\"$oid\":\"5F3A00000000000000000001\"},\"ok\":true}");
    char *p = pretty(v);
    ck_assert_str_eq(p, "{\n"
                        "  \"name\": \"Ann\",\n"
                        "  \"n\": 1,\n"
                        "  \"tags\": [\n"
                        "    \"a\",\n"
                        "    {\n"
                        "      \"x\": null\n"
                        "    }\n"
                        "  ],\n"
                        "  \"e\": {},\n"
                        "  \"l\": [],\n"
                        "  \"id\": {\n"
                        "    \"$oid\": \"5f3a00000000000000000001\"\n"
                        "  },\n"
                        "  \"ok\": true\n"
                        "}\n");
    free(p);
    char *l = line(v);
    ck_assert_str_eq(l, "{\"name\": \"Ann\", \"n\": 1, \"tags\": [\"a\", {\"x\": null}], \"e\": {}, "
                        "\"l\": [], \"id\": {\"$oid\": \"5f3a00000000000000000001\"}, \"ok\": true}");
    free(l);
    json_decref(v);

    v = parse_ok("  {}  \n");
    p = pretty(v);
    ck_assert_str_eq(p, "{}\n");
    free(p);
    json_decref(v);

    /* Scalars and nested wrappers at any depth. */
    json_t *d = value_new_date(-1);
    p = pretty(d);
    ck_assert_str_eq(p, "{\n  \"$date\": {\n    \"$numberLong\": \"-1\"\n  }\n}\n");
    free(p);
    json_decref(d);
    json_t *i = json_integer(7);
    p = pretty(i);
    ck_assert_str_eq(p, "7\n");
    free(p);
    json_decref(i);
}
END_TEST

START_TEST(test_round_trip_types)
{
    expect_line("{\"a\": null, \"b\": true, \"c\": false}", "{\"a\": null, \"b\": true, \"c\": false}");
    expect_line("{\"i\": -42, \"big\": 9223372036854775807, \"small\": -9223372036854775808}",
                "{\"i\": -42, \"big\": {\"$numberLong\": \"9223372036854775807\"}, "
                "\"small\": {\"$numberLong\": \"-9223372036854775808\"}}");
    expect_line("{\"a\": 9007199254740992, \"b\": 9007199254740993, \"c\": -9007199254740993}",
                "{\"a\": 9007199254740992, \"b\": {\"$numberLong\": \"9007199254740993\"}, "
                "\"c\": {\"$numberLong\": \"-9007199254740993\"}}");
    expect_line("{\"s\": \"plain\", \"e\": \"\"}", "{\"s\": \"plain\", \"e\": \"\"}");
    expect_line("{\"o\": {\"$oid\": \"5F3A0000000000000000ABCD\"}}",
                "{\"o\": {\"$oid\": \"5f3a0000000000000000abcd\"}}");
    expect_line("{\"d\": {\"$date\": \"2024-05-01T12:00:00Z\"}}",
                "{\"d\": {\"$date\": \"2024-05-01T12:00:00Z\"}}");
    expect_line("{\"d\": {\"$date\": \"2024-05-01T12:00:00.120Z\"}}",
                "{\"d\": {\"$date\": \"2024-05-01T12:00:00.120Z\"}}");
    expect_line("{\"d\": {\"$date\": \"1969-12-31T23:59:59Z\"}}",
                "{\"d\": {\"$date\": {\"$numberLong\": \"-1000\"}}}");
    expect_line("{\"d\": {\"$date\": 253402300800000}}",
                "{\"d\": {\"$date\": {\"$numberLong\": \"253402300800000\"}}}");
    expect_line("{\"d\": {\"$date\": 253402300799999}}",
                "{\"d\": {\"$date\": \"9999-12-31T23:59:59.999Z\"}}");
    expect_line("{\"d\": {\"$date\": 0}}", "{\"d\": {\"$date\": \"1970-01-01T00:00:00Z\"}}");
    expect_line("{\"u\": {\"$uuid\": \"0011AABB-4455-6677-8899-AABBCCDDEEFF\"}}",
                "{\"u\": {\"$uuid\": \"0011aabb-4455-6677-8899-aabbccddeeff\"}}");
    expect_line("{\"m\": {\"$numberDecimal\": \"-1.50E+3\"}, \"n\": {\"$numberDecimal\": \"NaN\"}}",
                "{\"m\": {\"$numberDecimal\": \"-1.50E+3\"}, \"n\": {\"$numberDecimal\": \"NaN\"}}");
    expect_line("{\"b\": {\"$binary\": {\"base64\": \"aGVsbG8=\", \"subType\": \"0\"}}}",
                "{\"b\": {\"$binary\": {\"base64\": \"aGVsbG8=\", \"subType\": \"00\"}}}");
    expect_line("{\"b\": {\"$binary\": {\"base64\": \"aGVsbG8\", \"subType\": \"00\"}}}",
                "{\"b\": {\"$binary\": {\"base64\": \"aGVsbG8=\", \"subType\": \"00\"}}}");
    expect_line("{\"b\": {\"$binary\": {\"subType\": \"8A\", \"base64\": \"\"}}}",
                "{\"b\": {\"$binary\": {\"base64\": \"\", \"subType\": \"8a\"}}}");
    expect_line("{\"x\": {\"$numberDouble\": \"Infinity\"}, \"y\": {\"$numberDouble\": \"-Infinity\"},"
                " \"z\": {\"$numberDouble\": \"NaN\"}}",
                "{\"x\": {\"$numberDouble\": \"Infinity\"}, \"y\": {\"$numberDouble\": \"-Infinity\"},"
                " \"z\": {\"$numberDouble\": \"NaN\"}}");
    expect_line("{\"deep\": {\"a\": [[], [{}], [1, [2, {\"b\": {\"$date\": 1}}]]]}}",
                "{\"deep\": {\"a\": [[], [{}], [1, [2, {\"b\": {\"$date\": \"1970-01-01T00:00:00.001Z\"}}]]]}}");
}
END_TEST

START_TEST(test_canonical_and_relaxed)
{
    /* Canonical Extended JSON v2 (mongoexport --jsonFormat=canonical). */
    json_t *canonical = parse_ok(
        "{\"_id\": {\"$oid\": \"5f3a00000000000000000001\"},"
        " \"i\": {\"$numberInt\": \"-7\"}, \"l\": {\"$numberLong\": \"123\"},"
        " \"d\": {\"$numberDouble\": \"1.5\"}, \"z\": {\"$numberDouble\": \"-0.0\"},"
        " \"e\": {\"$numberDouble\": \"1.0E+300\"},"
        " \"when\": {\"$date\": {\"$numberLong\": \"1714564800000\"}},"
        " \"u\": {\"$binary\": {\"base64\": \"ABEiM0RVZneImaq7zN3u/w==\", \"subType\": \"04\"}},"
        " \"bin\": {\"$binary\": \"aGk=\", \"$type\": \"05\"},"
        " \"bin2\": {\"$type\": \"5\", \"$binary\": \"aGk=\"}}");
    json_t *relaxed = parse_ok(
        "{\"_id\": {\"$oid\": \"5f3a00000000000000000001\"}, \"i\": -7, \"l\": 123,"
        " \"d\": 1.5, \"z\": -0.0, \"e\": 1e300,"
        " \"when\": {\"$date\": \"2024-05-01T14:00:00+02:00\"},"
        " \"u\": {\"$uuid\": \"00112233-4455-6677-8899-aabbccddeeff\"},"
        " \"bin\": {\"$binary\": {\"base64\": \"aGk=\", \"subType\": \"05\"}},"
        " \"bin2\": {\"$binary\": {\"base64\": \"aGk=\", \"subType\": \"05\"}}}");
    ck_assert(value_equal(canonical, relaxed));
    char *a = pretty(canonical), *b = pretty(relaxed);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    ck_assert(json_is_integer(json_object_get(canonical, "i")));
    ck_assert(json_is_integer(json_object_get(canonical, "l")));
    ck_assert(json_is_real(json_object_get(canonical, "d")));
    ck_assert(signbit(json_real_value(json_object_get(canonical, "z"))));
    ck_assert_int_eq(value_type_of(json_object_get(canonical, "u")), VALUE_UUID);
    json_decref(canonical);
    json_decref(relaxed);

    /* Subtype 4 of another size stays binary; subtype 3 (legacy UUID) too. */
    json_t *v = parse_ok("{\"a\": {\"$binary\": {\"base64\": \"AAE=\", \"subType\": \"04\"}},"
                         " \"b\": {\"$binary\": {\"base64\": \"ABEiM0RVZneImaq7zN3u/w==\", \"subType\": \"03\"}}}");
    ck_assert_int_eq(value_type_of(json_object_get(v, "a")), VALUE_BINARY);
    ck_assert_int_eq(value_type_of(json_object_get(v, "b")), VALUE_BINARY);
    json_decref(v);

    /* Integer $date, $numberLong date, negative dates. */
    v = parse_ok("{\"a\": {\"$date\": -62135596800000}, \"b\": {\"$date\": \"0001-01-01T00:00:00Z\"}}");
    ck_assert(value_equal(json_object_get(v, "a"), json_object_get(v, "b")));
    json_decref(v);
}
END_TEST

START_TEST(test_doubles)
{
    expect_line("{\"a\": 0.1, \"b\": 1.0, \"c\": 1e300, \"d\": -0.0, \"e\": 0.0}",
                "{\"a\": 0.1, \"b\": 1.0, \"c\": 1e+300, \"d\": -0.0, \"e\": 0.0}");
    expect_line("{\"a\": 100.0, \"b\": 1e15, \"c\": 1e16, \"d\": 123456789012345680000.0}",
                "{\"a\": 100.0, \"b\": 1e+15, \"c\": 1e+16, \"d\": 1.2345678901234568e+20}");
    expect_line("{\"a\": 0.30000000000000004, \"b\": 5e-324, \"c\": 1.7976931348623157e308}",
                "{\"a\": 0.30000000000000004, \"b\": 4.94065645841247e-324,"
                " \"c\": 1.7976931348623157e+308}");
    expect_line("{\"a\": 2.5, \"b\": -3.75, \"c\": 1e-7}", "{\"a\": 2.5, \"b\": -3.75, \"c\": 1e-07}");

    /* Every formatted double reads back bit-for-bit. */
    static const double samples[] = {0.1, 1.0 / 3, 2.0 / 3, 1e-300, 123.456, 9007199254740993.0,
                                     -1e-5, 6.02214076e23, 4.35, 0.1 + 0.2};
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        json_t *d = json_real(samples[k]);
        char *text = line(d);
        ck_assert_msg(strtod(text, NULL) == samples[k], "%s", text);
        ck_assert(strpbrk(text, ".e") != NULL);
        free(text);
        json_decref(d);
    }
    /* Non-finite doubles print as wrappers. */
    json_t *w = value_new_double(-INFINITY);
    char *text = line(w);
    ck_assert_str_eq(text, "{\"$numberDouble\": \"-Infinity\"}");
    free(text);
    json_decref(w);
}
END_TEST

START_TEST(test_strings)
{
    /* NUL, control characters, quotes, backslash, '/', non-ASCII as UTF-8. */
    const char input[] = "{\"s\": \"a\\u0000b\\n\\t\\r\\b\\f\\u0001\\u001f\\\"\\\\\\/\\u00e9\\u20ac"
                         "\\ud83d\\ude00\\u007f\", \"k\\u00e9y\": 1}";
    json_t *v = parse_ok(input);
    json_t *s = json_object_get(v, "s");
    ck_assert_uint_eq(json_string_length(s), 23);
    ck_assert_int_eq(json_string_value(s)[1], '\0');
    char *l = line(v);
    ck_assert_str_eq(l, "{\"s\": \"a\\u0000b\\n\\t\\r\\b\\f\\u0001\\u001f\\\"\\\\/\xc3\xa9\xe2\x82\xac"
                        "\xf0\x9f\x98\x80\x7f\", \"k\xc3\xa9y\": 1}");
    free(l);
    char *p = pretty(v);
    json_t *again = parse_ok(p);
    ck_assert(value_equal(v, again));
    ck_assert_uint_eq(json_string_length(json_object_get(again, "s")), 23);
    json_decref(again);
    free(p);
    json_decref(v);

    /* Raw UTF-8 input. */
    expect_line("{\"名前\": \"Zoë ✓\"}", "{\"名前\": \"Zoë ✓\"}");
}
END_TEST

START_TEST(test_syntax_errors)
{
    expect_syntax_error("{\"a\": 1,\n  \"b\": }", 2, 8);
    expect_syntax_error("{\"a\": 1", 1, 7);
    expect_syntax_error("{\"a\" 1}", 1, 6);
    expect_syntax_error("{\"a\": tru}", 1, 9);
    expect_syntax_error("{\"a\": 1} x", 1, 10);
    expect_syntax_error("", 1, 1);
    expect_syntax_error("{\"a\": \"\xff\"}", 1, 7);
    expect_syntax_error("{\n\n   \"a\": [1,,2]}", 3, 12);

    ejson_error error;
    ck_assert_ptr_null(ejson_parse("{\"a\": 1, \"a\": 2}", 16, &error));
    ck_assert_int_eq(error.line, 1);
    ck_assert(strstr(error.message, "duplicate") != NULL);

    ck_assert_ptr_null(ejson_parse("{\"a\\u0000b\": 1}", 15, &error));
    ck_assert_int_eq(error.line, 1);
    ck_assert(strstr(error.message, "NUL") != NULL);

    const char *big = "{\n \"n\": 99999999999999999999}";
    ck_assert_ptr_null(ejson_parse(big, strlen(big), &error));
    ck_assert_int_eq(error.line, 2);
    ck_assert_int_gt(error.column, 0);
    ck_assert(strncmp(error.message, "number is too large for a 64-bit integer", 40) == 0);
    big = "{\"n\": -99999999999999999999}";
    ck_assert_ptr_null(ejson_parse(big, strlen(big), &error));
    ck_assert(strncmp(error.message, "number is too large for a 64-bit integer", 40) == 0);
    big = "{\"n\": 1e400}";
    ck_assert_ptr_null(ejson_parse(big, strlen(big), &error));
    ck_assert(strncmp(error.message, "number is too large for a double", 32) == 0);

    /* The length bounds the text: a NUL byte outside a string is an error. */
    ck_assert_ptr_null(ejson_parse("{}\0{}", 5, &error));
    json_t *v = ejson_parse("{}\0garbage", 2, &error);
    ck_assert_ptr_nonnull(v);
    json_decref(v);
}
END_TEST

START_TEST(test_semantic_errors)
{
    expect_error("[1, 2]", "the top level must be a JSON object");
    expect_error("{\"$oid\": \"5f3a00000000000000000001\"}",
                 "field \"$oid\": field names may not start with '$'");
    expect_error("{\"a\": {\"b\": 1, \"$c\": 2}}", "field \"a.$c\": field names may not start with '$'");
    expect_error("{\"owner\": {\"tags\": [1, 2, {\"$oid\": \"xyz\"}]}}",
                 "field \"owner.tags[2]\": $oid must be 24 hexadecimal digits");
    expect_error("{\"a\": [[{\"$oid\": 5}]]}", "field \"a[0][0]\": $oid must be 24 hexadecimal digits");
    expect_error("{\"a\": {\"$oid\": \"5f3a0000000000000000000g\"}}",
                 "field \"a\": $oid must be 24 hexadecimal digits");
    expect_error("{\"a\": {\"$oid\": \"5f3a000000000000000000001\"}}",
                 "field \"a\": $oid must be 24 hexadecimal digits");
    expect_error("{\"a\": {\"$oid\": \"5f3a00000000000000000001\", \"x\": 1}}",
                 "field \"a\": $oid may not have other fields (found \"x\")");
    expect_error("{\"a\": {\"$timestamp\": {\"t\": 1, \"i\": 1}}}",
                 "field \"a\": unsupported Extended JSON type $timestamp");
    expect_error("{\"a\": {\"$regularExpression\": {\"pattern\": \"x\", \"options\": \"\"}}}",
                 "field \"a\": unsupported Extended JSON type $regularExpression");
    expect_error("{\"a\": {\"$minKey\": 1}}", "field \"a\": unsupported Extended JSON type $minKey");
    expect_error("{\"a\": {\"$maxKey\": 1}}", "field \"a\": unsupported Extended JSON type $maxKey");
    expect_error("{\"a\": {\"$symbol\": \"s\"}}", "field \"a\": unsupported Extended JSON type $symbol");
    expect_error("{\"a\": {\"$code\": \"f()\"}}", "field \"a\": unsupported Extended JSON type $code");
    expect_error("{\"a\": {\"$undefined\": true}}",
                 "field \"a\": unsupported Extended JSON type $undefined");
    expect_error("{\"a\": {\"$dbPointer\": {}}}", "field \"a\": unsupported Extended JSON type $dbPointer");
    expect_error("{\"a\": {\"$type\": \"x\"}}", "field \"a\": unsupported Extended JSON type $type");

    expect_error("{\"a\": {\"$date\": \"2024-02-30T00:00:00Z\"}}",
                 "field \"a\": $date \"2024-02-30T00:00:00Z\" is not an ISO-8601 date");
    expect_error("{\"a\": {\"$date\": 1.5}}",
                 "field \"a\": $date must be an ISO-8601 string, {\"$numberLong\": \"<ms>\"} or an integer");
    expect_error("{\"a\": {\"$date\": {\"$numberLong\": \"1x\"}}}",
                 "field \"a\": $date must be an ISO-8601 string, {\"$numberLong\": \"<ms>\"} or an integer");
    expect_error("{\"a\": {\"$date\": {\"$numberLong\": \"1\", \"b\": 2}}}",
                 "field \"a\": $date must be an ISO-8601 string, {\"$numberLong\": \"<ms>\"} or an integer");
    expect_error("{\"a\": {\"$date\": {\"$numberLong\": \"99999999999999999999\"}}}",
                 "field \"a\": $date number is too large for a 64-bit integer");

    expect_error("{\"a\": {\"$numberLong\": \"99999999999999999999\"}}",
                 "field \"a\": $numberLong is too large for a 64-bit integer");
    expect_error("{\"a\": {\"$numberLong\": 5}}",
                 "field \"a\": $numberLong must be a string of decimal digits");
    expect_error("{\"a\": {\"$numberLong\": \"+5\"}}",
                 "field \"a\": $numberLong must be a string of decimal digits");
    expect_error("{\"a\": {\"$numberLong\": \"\"}}",
                 "field \"a\": $numberLong must be a string of decimal digits");
    expect_error("{\"a\": {\"$numberInt\": \"2147483648\"}}",
                 "field \"a\": $numberInt must be a string holding a 32-bit integer");
    expect_error("{\"a\": {\"$numberDouble\": \"abc\"}}",
                 "field \"a\": $numberDouble must be a decimal number, \"Infinity\", \"-Infinity\" or \"NaN\"");
    expect_error("{\"a\": {\"$numberDouble\": \"inf\"}}",
                 "field \"a\": $numberDouble must be a decimal number, \"Infinity\", \"-Infinity\" or \"NaN\"");
    expect_error("{\"a\": {\"$numberDouble\": \"1e999\"}}",
                 "field \"a\": $numberDouble \"1e999\" is too large for a double");
    expect_error("{\"a\": {\"$numberDecimal\": \"1.2.3\"}}",
                 "field \"a\": $numberDecimal must be a decimal number, \"Infinity\", \"-Infinity\" or \"NaN\"");
    expect_error("{\"a\": {\"$numberDecimal\": 12}}",
                 "field \"a\": $numberDecimal must be a decimal number, \"Infinity\", \"-Infinity\" or \"NaN\"");

    expect_error("{\"a\": {\"$binary\": {\"base64\": \"a$==\", \"subType\": \"00\"}}}",
                 "field \"a\": $binary base64 is not valid base64");
    expect_error("{\"a\": {\"$binary\": {\"base64\": \"aGVsbG8==\", \"subType\": \"00\"}}}",
                 "field \"a\": $binary base64 is not valid base64");
    expect_error("{\"a\": {\"$binary\": {\"base64\": \"aGVsb\", \"subType\": \"00\"}}}",
                 "field \"a\": $binary base64 is not valid base64");
    expect_error("{\"a\": {\"$binary\": {\"base64\": \"aGVs bG8=\", \"subType\": \"00\"}}}",
                 "field \"a\": $binary base64 is not valid base64");
    expect_error("{\"a\": {\"$binary\": {\"base64\": \"aGVsbG8=\", \"subType\": \"100\"}}}",
                 "field \"a\": $binary subType must be one or two hexadecimal digits");
    expect_error("{\"a\": {\"$binary\": {\"base64\": \"aGVsbG8=\"}}}",
                 "field \"a\": $binary must be {\"base64\": \"<base64>\", \"subType\": \"<hex>\"}");
    expect_error("{\"a\": {\"$binary\": {\"base64\": \"\", \"subType\": \"00\", \"x\": 1}}}",
                 "field \"a\": $binary must be {\"base64\": \"<base64>\", \"subType\": \"<hex>\"}");
    expect_error("{\"a\": {\"$binary\": \"aGk=\"}}",
                 "field \"a\": legacy $binary must be {\"$binary\": \"<base64>\", \"$type\": \"<hex>\"}");
    expect_error("{\"a\": {\"$binary\": \"aGk=\", \"$type\": \"zz\"}}",
                 "field \"a\": $binary subType must be one or two hexadecimal digits");

    expect_error("{\"a\": {\"$uuid\": \"00112233445566778899aabbccddeeff\"}}",
                 "field \"a\": $uuid must be 8-4-4-4-12 hexadecimal digits");
    expect_error("{\"a\": {\"$uuid\": \"00112233-4455-6677-8899-aabbccddeefg\"}}",
                 "field \"a\": $uuid must be 8-4-4-4-12 hexadecimal digits");

    /* Wrapper strings may not hide a NUL. */
    expect_error("{\"a\": {\"$oid\": \"5f3a0000000000000000000\\u0000\"}}",
                 "field \"a\": $oid must be 24 hexadecimal digits");
    /* A '$' key that is not first in its object is a field name. */
    expect_error("{\"a\": {\"x\": 1, \"$oid\": \"5f3a00000000000000000001\"}}",
                 "field \"a.$oid\": field names may not start with '$'");
}
END_TEST

START_TEST(test_normalize)
{
    ejson_error error;
    /* A mongoexport line read by jansson itself. */
    json_error_t jerr;
    json_t *raw = json_loads("{\"_id\": {\"$oid\": \"5F3A00000000000000000001\"}, \"n\": "
                             "{\"$numberLong\": \"5\"}}", 0, &jerr);
    ck_assert_ptr_nonnull(raw);
    json_t *v = ejson_normalize(raw, &error);
    ck_assert_ptr_nonnull(v);
    ck_assert(v != raw);
    char *l = line(v);
    ck_assert_str_eq(l, "{\"_id\": {\"$oid\": \"5f3a00000000000000000001\"}, \"n\": 5}");
    free(l);
    json_decref(v);
    /* raw is untouched. */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(raw, "_id"), "$oid")),
                     "5F3A00000000000000000001");
    json_decref(raw);

    /* Any value, including a bare wrapper. */
    raw = json_pack("{s:s}", "$date", "2024-05-01T12:00:00Z");
    v = ejson_normalize(raw, &error);
    ck_assert_int_eq(value_type_of(v), VALUE_DATE);
    json_decref(v);
    json_decref(raw);

    /* Errors carry no position. */
    raw = json_pack("{s:[i,{s:i}]}", "a", 1, "$x", 2);
    memset(&error, 0x55, sizeof error);
    ck_assert_ptr_null(ejson_normalize(raw, &error));
    ck_assert_int_eq(error.line, 0);
    ck_assert_int_eq(error.column, 0);
    ck_assert_str_eq(error.message, "field \"a[1]\": unsupported Extended JSON type $x");
    json_decref(raw);

    /* NUL in a key, made with the length-aware API. */
    raw = json_object();
    json_object_setn_new(raw, "a\0b", 3, json_integer(1));
    ck_assert_ptr_null(ejson_normalize(raw, &error));
    ck_assert_str_eq(error.message, "field names may not contain NUL");
    json_decref(raw);
}
END_TEST

static void expect_date(const char *text, int64_t ms)
{
    int64_t got = 12345;
    ck_assert_msg(ejson_parse_iso_date(text, &got) == 0, "%s should parse", text);
    ck_assert_msg(got == ms, "%s: %lld, wanted %lld", text, (long long)got, (long long)ms);
}

static void expect_bad_date(const char *text)
{
    int64_t got;
    ck_assert_msg(ejson_parse_iso_date(text, &got) == -EINVAL, "%s should not parse", text);
}

START_TEST(test_iso_dates)
{
    expect_date("1970-01-01T00:00:00Z", 0);
    expect_date("2024-05-01T12:00:00Z", INT64_C(1714564800000));
    expect_date("2024-05-01T12:00:00.123Z", INT64_C(1714564800123));
    expect_date("2024-05-01T12:00:00.1Z", INT64_C(1714564800100));
    expect_date("2024-05-01T12:00:00.123999Z", INT64_C(1714564800123));
    expect_date("2024-05-01T12:00:00+02:00", INT64_C(1714557600000));
    expect_date("2024-05-01T12:00:00-0500", INT64_C(1714582800000));
    expect_date("2024-05-01T12:00:00.5+05:30", INT64_C(1714545000500));
    expect_date("2024-02-29T00:00:00Z", INT64_C(1709164800000));
    expect_date("2000-02-29T00:00:00Z", INT64_C(951782400000));
    expect_date("1969-12-31T23:59:59.999Z", -1);
    expect_date("1900-01-01T00:00:00Z", INT64_C(-2208988800000));
    expect_date("0000-01-01T00:00:00Z", INT64_C(-62167219200000));
    expect_date("9999-12-31T23:59:59.999Z", INT64_C(253402300799999));
    expect_date("1970-01-01T00:00:00+01:00", -3600000);

    expect_bad_date("");
    expect_bad_date("garbage");
    expect_bad_date("2024-05-01");
    expect_bad_date("2024-05-01T12:00:00");
    expect_bad_date("2024-05-01 12:00:00Z");
    expect_bad_date("2024-13-01T12:00:00Z");
    expect_bad_date("2024-00-01T12:00:00Z");
    expect_bad_date("2023-02-29T12:00:00Z");
    expect_bad_date("1900-02-29T12:00:00Z");
    expect_bad_date("2024-04-31T12:00:00Z");
    expect_bad_date("2024-05-00T12:00:00Z");
    expect_bad_date("2024-05-01T24:00:00Z");
    expect_bad_date("2024-05-01T12:60:00Z");
    expect_bad_date("2024-05-01T12:00:60Z");
    expect_bad_date("2024-05-01T12:00:00.Z");
    expect_bad_date("2024-05-01T12:00:00+2:00");
    expect_bad_date("2024-05-01T12:00:00+24:00");
    expect_bad_date("2024-05-01T12:00:00+02:60");
    expect_bad_date("2024-05-01T12:00:00+02");
    expect_bad_date("2024-05-01T12:00:00Zjunk");
    expect_bad_date("24-05-01T12:00:00Z");
    expect_bad_date("+2024-05-01T12:00:00Z");

    char out[32];
    ck_assert_int_eq(ejson_format_iso_date(0, out, sizeof out), 0);
    ck_assert_str_eq(out, "1970-01-01T00:00:00Z");
    ck_assert_int_eq(ejson_format_iso_date(INT64_C(1714564800123), out, sizeof out), 0);
    ck_assert_str_eq(out, "2024-05-01T12:00:00.123Z");
    ck_assert_int_eq(ejson_format_iso_date(INT64_C(1709251199007), out, sizeof out), 0);
    ck_assert_str_eq(out, "2024-02-29T23:59:59.007Z");
    ck_assert_int_eq(ejson_format_iso_date(INT64_C(253402300799999), out, sizeof out), 0);
    ck_assert_str_eq(out, "9999-12-31T23:59:59.999Z");
    ck_assert_int_eq(ejson_format_iso_date(-1, out, sizeof out), -ERANGE);
    ck_assert_int_eq(ejson_format_iso_date(INT64_C(253402300800000), out, sizeof out), -ERANGE);
    ck_assert_int_eq(ejson_format_iso_date(INT64_MIN, out, sizeof out), -ERANGE);
    ck_assert_int_eq(ejson_format_iso_date(0, out, 10), -ENOSPC);

    /* Every day over a span of years round-trips. */
    for (int64_t day = 0; day < 366 * 60; day += 7) {
        int64_t ms = day * 86400000 + (day % 1000) * 1001, back;
        ck_assert_int_eq(ejson_format_iso_date(ms, out, sizeof out), 0);
        ck_assert_int_eq(ejson_parse_iso_date(out, &back), 0);
        ck_assert_msg(back == ms, "%s", out);
    }
}
END_TEST

/* ---- Property: format(parse(format(v))) == format(v) for random values. */

/* A seeded xorshift generator, so that every run tests the same values. */
typedef struct random_source {
    uint64_t state;
} random_source;

static uint64_t rng(random_source *random)
{
    random->state ^= random->state << 13;
    random->state ^= random->state >> 7;
    random->state ^= random->state << 17;
    return random->state;
}

static json_t *random_string(random_source *random, bool key)
{
    static const char *const pieces[] = {"a", "Z", "0", " ", ".", "\"", "\\", "/", "\n", "\t",
                                         "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", "$"};
    char text[64];
    size_t len = 0;
    size_t n = rng(random) % 8;
    for (size_t i = 0; i < n; i++) {
        const char *piece = pieces[rng(random) % (sizeof pieces / sizeof pieces[0])];
        memcpy(text + len, piece, strlen(piece));
        len += strlen(piece);
    }
    if (!key && rng(random) % 4 == 0)
        text[len++] = '\0';     /* strings may hold NUL */
    if (key && len > 0 && text[0] == '$')
        text[0] = '_';
    return json_stringn(text, len);
}

static json_t *random_value(random_source *random, int depth)
{
    uint8_t bytes[20];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)rng(random);
    switch (rng(random) % (depth > 3 ? 12 : 14)) {
    case 0: return json_null();
    case 1: return json_boolean(rng(random) & 1);
    case 2: return json_integer((json_int_t)rng(random));
    case 3: return json_integer((json_int_t)(rng(random) % 2001) - 1000);
    case 4: {
        uint64_t bits = rng(random);
        double d;
        memcpy(&d, &bits, sizeof d);
        return value_new_double(d);
    }
    case 5: return json_real((double)(int64_t)(rng(random) % 100000) / 64.0);
    case 6: return random_string(random, false);
    case 7: return value_new_object_id(bytes);
    case 8: return value_new_date(rng(random) % 3
                                      ? (int64_t)(rng(random) % INT64_C(300000000000000)) - INT64_C(10000000000)
                                      : (int64_t)rng(random));
    case 9: return value_new_uuid(bytes);
    case 10: return value_new_binary(bytes, rng(random) % 20, (uint8_t)(rng(random) % 6 ? rng(random) % 8 : 0x80));
    case 11: {
        static const char *const decimals[] = {"0", "-0", "1.50", "-1E+3", "1e-6176", ".5", "5.",
                                               "+7", "Infinity", "-Infinity", "NaN",
                                               "1234567890123456789012345678901234"};
        return value_new_decimal(decimals[rng(random) % (sizeof decimals / sizeof decimals[0])]);
    }
    case 12: {
        json_t *a = json_array();
        for (size_t n = rng(random) % 5; n > 0; n--)
            json_array_append_new(a, random_value(random, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t n = rng(random) % 5; n > 0; n--) {
            json_t *k = random_string(random, true);
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(random, depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

START_TEST(test_random_round_trips)
{
    random_source source = {0x9e3779b97f4a7c15u}, *random = &source;
    for (int round = 0; round < 2000; round++) {
        json_t *doc = json_object();
        for (size_t n = rng(random) % 6; n > 0; n--) {
            json_t *k = random_string(random, true);
            json_object_setn_new(doc, json_string_value(k), json_string_length(k), random_value(random, 0));
            json_decref(k);
        }
        char *p = pretty(doc);
        char *l = line(doc);
        json_t *back = parse_ok(p);
        ck_assert_msg(value_equal(doc, back), "value changed:\n%s", p);
        char *p2 = pretty(back);
        ck_assert_str_eq(p, p2);
        json_t *back_line = parse_ok(l);
        char *p3 = pretty(back_line);
        ck_assert_str_eq(p, p3);
        ck_assert(strchr(l, '\n') == NULL);
        /* ejson_normalize of jansson's own reading gives the same value. */
        json_error_t jerr;
        json_t *raw = json_loadb(p, strlen(p), JSON_ALLOW_NUL, &jerr);
        ck_assert_ptr_nonnull(raw);
        ejson_error error;
        json_t *norm = ejson_normalize(raw, &error);
        ck_assert_msg(norm != NULL, "%s", error.message);
        ck_assert(value_equal(norm, doc));
        json_decref(norm);
        json_decref(raw);
        free(p3);
        json_decref(back_line);
        free(p2);
        json_decref(back);
        free(l);
        free(p);
        json_decref(doc);
    }
}
END_TEST

/* ---- ejson_parse_fields: ejson_parse, then only the selected fields. */

/* Whether a and b are the same tree: the same jansson types, numbers equal
 * bit for bit, the same keys in the same order. */
static bool same_tree(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_tree(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *in_a = json_object_iter((json_t *)a), *in_b = json_object_iter((json_t *)b);
        for (; in_a && in_b; in_a = json_object_iter_next((json_t *)a, in_a),
                             in_b = json_object_iter_next((json_t *)b, in_b)) {
            size_t length = json_object_iter_key_len(in_a);
            if (length != json_object_iter_key_len(in_b) ||
                memcmp(json_object_iter_key(in_a), json_object_iter_key(in_b), length) != 0 ||
                !same_tree(json_object_iter_value(in_a), json_object_iter_value(in_b)))
                return false;
        }
        return true;
    }
    default:
        return true;
    }
}

static ejson_field_set *field_set_of(const char *const *paths, size_t count)
{
    ejson_field_set *fields = ejson_field_set_new();
    ck_assert_ptr_nonnull(fields);
    for (size_t i = 0; i < count; i++)
        ck_assert_int_eq(ejson_field_set_add_path(fields, paths[i]), 0);
    return fields;
}

/* The document with only the top-level fields of paths, worked out here
 * rather than by the code under test. */
static json_t *projection_of(const json_t *whole, const char *const *paths, size_t count)
{
    json_t *kept = json_object();
    const char *key;
    size_t key_length;
    json_t *value;
    json_object_keylen_foreach((json_t *)whole, key, key_length, value) {
        for (size_t i = 0; i < count; i++) {
            if (strcspn(paths[i], ".") == key_length && memcmp(paths[i], key, key_length) == 0) {
                json_object_setn(kept, key, key_length, value);
                break;
            }
        }
    }
    return kept;
}

/* ejson_parse agrees with ejson_parse_reference on text: the same tree,
 * or the same error, position included. */
static void expect_parse_like_reference(const char *text, size_t length, const json_t *expected,
                                        const ejson_error *expected_error)
{
    ejson_error error;
    memset(&error, 0x44, sizeof error);
    json_t *got = ejson_parse(text, length, &error);
    if (!expected) {
        ck_assert_msg(got == NULL, "accepted what the reference refuses:\n%.*s", (int)length,
                      text);
        ck_assert_msg(strcmp(error.message, expected_error->message) == 0 &&
                          error.line == expected_error->line &&
                          error.column == expected_error->column,
                      "%.*s\n gave  %d:%d %s", (int)length, text, error.line, error.column,
                      error.message);
    } else {
        ck_assert_msg(got != NULL && same_tree(got, expected), "%.*s: not the reference's tree",
                      (int)length, text);
    }
    json_decref(got);
}

/* ejson_parse_fields agrees with ejson_parse on text: the same selected
 * fields, or the same error, position included. */
static void expect_fields_like_parse(const char *text, size_t length, const char *const *paths,
                                     size_t count)
{
    ejson_field_set *fields = field_set_of(paths, count);
    ejson_error whole_error, fields_error;
    memset(&whole_error, 0x55, sizeof whole_error);
    memset(&fields_error, 0x33, sizeof fields_error);
    json_t *whole = ejson_parse_reference(text, length, &whole_error);
    json_t *got = ejson_parse_fields(text, length, fields, &fields_error);
    expect_parse_like_reference(text, length, whole, &whole_error);
    if (!whole) {
        ck_assert_msg(got == NULL, "accepted what ejson_parse refuses (%s):\n%.*s",
                      whole_error.message, (int)length, text);
        ck_assert_msg(strcmp(fields_error.message, whole_error.message) == 0 &&
                          fields_error.line == whole_error.line &&
                          fields_error.column == whole_error.column,
                      "%.*s\n gave  %d:%d %s\n wanted %d:%d %s", (int)length, text,
                      fields_error.line, fields_error.column, fields_error.message,
                      whole_error.line, whole_error.column, whole_error.message);
    } else {
        ck_assert_msg(got != NULL, "refused (%s) what ejson_parse accepts:\n%.*s",
                      fields_error.message, (int)length, text);
        json_t *expected = projection_of(whole, paths, count);
        if (!same_tree(got, expected)) {
            char *got_line = line(got), *expected_line = line(expected);
            ck_abort_msg("%.*s\n gave  %s\n wanted %s", (int)length, text, got_line,
                         expected_line);
        }
        json_decref(expected);
    }
    json_decref(got);
    json_decref(whole);
    ejson_field_set_free(fields);
}

static void expect_fields_like_parse_text(const char *text, const char *const *paths,
                                          size_t count)
{
    expect_fields_like_parse(text, strlen(text), paths, count);
}

/* text with every selection of its fields "a", "b" and "c", and of "x"
 * (absent from it). */
static void expect_every_selection_like_parse(const char *text)
{
    static const char *const names[] = {"a", "b", "c", "x"};
    for (unsigned mask = 0; mask < 16; mask++) {
        const char *paths[4];
        size_t count = 0;
        for (size_t i = 0; i < 4; i++)
            if (mask & (1u << i))
                paths[count++] = names[i];
        expect_fields_like_parse_text(text, paths, count);
    }
}

START_TEST(test_fields_selects_top_level_fields)
{
    const char *text = "{\"_id\": 1, \"a\": {\"b\": [1, {\"c\": \"d\"}]}, \"ab\": 2, \"c\": 3}";
    const char *paths[] = {"a.b", "a", "a.b.c", "c"};
    ejson_field_set *fields = field_set_of(paths, 4);
    ejson_error error;
    json_t *got = ejson_parse_fields(text, strlen(text), fields, &error);
    ck_assert_ptr_nonnull(got);
    char *l = line(got);
    ck_assert_str_eq(l, "{\"a\": {\"b\": [1, {\"c\": \"d\"}]}, \"c\": 3}");
    free(l);
    json_decref(got);
    ejson_field_set_free(fields);

    /* No fields: an empty document, once the text is known to be valid. */
    fields = ejson_field_set_new();
    got = ejson_parse_fields(text, strlen(text), fields, &error);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(json_object_size(got), 0);
    json_decref(got);
    ck_assert_ptr_null(ejson_parse_fields("{\"a\": }", 7, fields, &error));
    ck_assert_int_eq(error.line, 1);
    ejson_field_set_free(fields);
    ejson_field_set_free(NULL);

    expect_every_selection_like_parse("{}");
    expect_every_selection_like_parse("  {\"c\": 1, \"b\": 2, \"a\": 3}\n");
    expect_every_selection_like_parse("{\n  \"a\": {\n    \"x\": [\n      1,\n      {}\n    ]\n  },\n"
                                      "  \"b\": [],\n  \"c\": \"\"\n}\n");
    expect_every_selection_like_parse("{\"a\":[[[]],[{}],{\"b\":{\"c\":[true,false,null]}}],"
                                      "\"b\":{\"a\":{\"a\":1}},\"c\":[{\"$date\":1}]}");
    expect_every_selection_like_parse("{\"\": 1, \"a.b\": 2, \"a\": 3}");
    const char *dotted[] = {"a.b"};
    expect_fields_like_parse_text("{\"a.b\": 1, \"a\": {\"b\": 2}}", dotted, 1);
}
END_TEST

/* Every wrapper form, canonical and relaxed, valid or not. */
static const char *const wrapper_samples[] = {
    "{\"$oid\": \"5f3a00000000000000000001\"}",
    "{\"$oid\": \"5F3A0000000000000000ABCD\"}",
    "{\"$oid\":\"5f3a0000000000000000000g\"}",
    "{\"$oid\": \"5f3a00000000000000000001\", \"x\": 1}",
    "{\"$oid\": 5}",
    "{\"$oid\": \"5f3a0000000000000000000\\u0000\"}",
    "{\"$oid\": \"\\u0035f3a00000000000000000001\"}",
    "{\"$date\": \"2024-05-01T12:00:00Z\"}",
    "{\"$date\": \"2024-05-01T14:00:00.5+02:00\"}",
    "{\"$date\": \"1969-12-31T23:59:59Z\"}",
    "{\"$date\": \"2024-02-30T00:00:00Z\"}",
    "{\"$date\": 253402300800000}",
    "{\"$date\": -1}",
    "{\"$date\": 1.5}",
    "{\"$date\": {\"$numberLong\": \"1714564800000\"}}",
    "{\"$date\": {\"$numberLong\": \"1x\"}}",
    "{\"$date\": {\"$numberLong\": \"1\", \"b\": 2}}",
    "{\"$date\": {\"$numberLong\": \"99999999999999999999\"}}",
    "{\"$numberInt\": \"-7\"}",
    "{\"$numberInt\": \"2147483648\"}",
    "{\"$numberLong\": \"123\"}",
    "{\"$numberLong\": \"-9223372036854775808\"}",
    "{\"$numberLong\": \"99999999999999999999\"}",
    "{\"$numberLong\": 5}",
    "{\"$numberLong\": \"+5\"}",
    "{\"$numberLong\": \"\"}",
    "{\"$numberDouble\": \"1.5\"}",
    "{\"$numberDouble\": \"-0.0\"}",
    "{\"$numberDouble\": \"1.0E+300\"}",
    "{\"$numberDouble\": \"Infinity\"}",
    "{\"$numberDouble\": \"-Infinity\"}",
    "{\"$numberDouble\": \"NaN\"}",
    "{\"$numberDouble\": \"abc\"}",
    "{\"$numberDouble\": \"1e999\"}",
    "{\"$numberDecimal\": \"-1.50E+3\"}",
    "{\"$numberDecimal\": \"NaN\"}",
    "{\"$numberDecimal\": \"1.2.3\"}",
    "{\"$numberDecimal\": 12}",
    "{\"$numberDecimal\": \"12345678901234567890123456789012345678901234567890123456789012345\"}",
    "{\"$uuid\": \"0011AABB-4455-6677-8899-AABBCCDDEEFF\"}",
    "{\"$uuid\": \"00112233445566778899aabbccddeeff\"}",
    "{\"$binary\": {\"base64\": \"aGVsbG8=\", \"subType\": \"0\"}}",
    "{\"$binary\": {\"subType\": \"8A\", \"base64\": \"\"}}",
    "{\"$binary\": {\"base64\": \"ABEiM0RVZneImaq7zN3u/w==\", \"subType\": \"04\"}}",
    "{\"$binary\": {\"base64\": \"a$==\", \"subType\": \"00\"}}",
    "{\"$binary\": {\"base64\": \"aGVsbG8=\", \"subType\": \"100\"}}",
    "{\"$binary\": {\"base64\": \"aGVsbG8=\"}}",
    "{\"$binary\": {\"base64\": \"aGVsbG8=\", \"base64\": \"aGVsbG8=\"}}",
    "{\"$binary\": \"aGk=\", \"$type\": \"05\"}",
    "{\"$type\": \"5\", \"$binary\": \"aGk=\"}",
    "{\"$binary\": \"aGk=\"}",
    "{\"$binary\": \"aGk=\", \"$type\": \"zz\"}",
    "{\"$type\": \"x\"}",
    "{\"$timestamp\": {\"t\": 1, \"i\": 1}}",
    "{\"$minKey\": 1}",
    "{\"$oid\": \"5f3a00000000000000000001\", \"$oid\": \"5f3a00000000000000000001\"}",
    "{\"x\": 1, \"$oid\": \"5f3a00000000000000000001\"}",
    "{\"x\": {\"$numberLong\": \"1\"}}",
    "{ \"$oid\" : \"5f3a00000000000000000001\" }",
    "{\n    \"$date\": \"2024-05-01T12:00:00Z\"\n  }",
};

START_TEST(test_fields_wrappers)
{
    for (size_t i = 0; i < sizeof wrapper_samples / sizeof wrapper_samples[0]; i++) {
        const char *sample = wrapper_samples[i];
        char text[1024];
        snprintf(text, sizeof text, "{\"a\": %s, \"b\": [%s, {\"x\": %s}], \"c\": 1}", sample,
                 sample, sample);
        expect_every_selection_like_parse(text);
        snprintf(text, sizeof text, "{\n  \"c\": true,\n  \"b\": {\n    \"x\": %s\n  },\n"
                 "  \"a\": %s\n}\n", sample, sample);
        expect_every_selection_like_parse(text);
        /* a wrapper at the top level is a field named "$...", never a wrapper */
        expect_every_selection_like_parse(sample);
    }
}
END_TEST

START_TEST(test_fields_strings)
{
    static const char *const strings[] = {
        "\"\"",
        "\"plain text, with ] and } and : inside\"",
        "\"a\\u0000b\"",
        "\"\\n\\t\\r\\b\\f\\\"\\\\\\/\"",
        "\"\\u00e9\\u20AC\\ud83d\\ude00\\u007f\"",
        "\"Zo\xc3\xab \xe2\x9c\x93 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"",
        "\"0123456789abcdef0123456789abcdef with a \\\" quote past eight bytes\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ud83dx\"",
        "\"\\u12\"",
        "\"\\uzzzz\"",
        "\"\\x\"",
        "\"tab\tinside\"",
        "\"newline\ninside\"",
        "\"\x01\"",
        "\"\x7f\"",
        "\"\xff\"",
        "\"\xc0\xaf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"",
        "\"\xc3\"",
        "\"unterminated",
        "\"ends in a backslash\\",
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"a\": %s, \"b\": [%s], \"c\": {\"k\": %s}}", strings[i],
                 strings[i], strings[i]);
        expect_every_selection_like_parse(text);
        /* as a key: escaped keys are read by ejson_parse itself */
        snprintf(text, sizeof text, "{%s: 1, \"a\": {%s: 2}, \"b\": 3}", strings[i], strings[i]);
        expect_every_selection_like_parse(text);
    }
    /* NUL bytes in the text itself, and a length that stops before them */
    const char *paths[] = {"a"};
    expect_fields_like_parse("{\"a\": \"x\0y\"}", 12, paths, 1);
    expect_fields_like_parse("{\"a\": 1}\0{}", 11, paths, 1);
    expect_fields_like_parse("{\"a\": 1}\0garbage", 8, paths, 1);
    expect_fields_like_parse("{\"b\": 1, \"a\": 1}", 12, paths, 1);
    expect_every_selection_like_parse("{\"a\\u0000b\": 1}");
    expect_every_selection_like_parse("{\"\\u0061\": 1, \"a\": 2}");
    expect_every_selection_like_parse("{\"\\u0061\": 1, \"b\": 2}");
    expect_every_selection_like_parse("{\"\\u0024x\": 1}");
    expect_every_selection_like_parse("{\"a\": {\"\\u0024oid\": \"5f3a00000000000000000001\"}}");
}
END_TEST

START_TEST(test_fields_numbers)
{
    static const char *const numbers[] = {
        "0", "-0", "7", "-42", "123456789012345678", "-123456789012345678",
        "1234567890123456789", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "-9223372036854775809", "99999999999999999999",
        "0.0", "-0.0", "1.5", "-3.75", "1e300", "1E+300", "1e-7", "2.5e-324", "1e-400",
        "1.7976931348623157e308", "1.7976931348623159e308", "1e308", "1e309", "-1e400",
        "10e307", "0.0000000000000000000000000000000000000000000000000000000000000000000001",
        "123456789012345678901234567890123456789012345678901234567890123456789.5",
        "1" "000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000.0",
        "1e99999999999999999999", "1e-99999999999999999999", "0e99999",
        "01", "-", "+1", ".5", "1.", "1.e5", "1e", "1e+", "--1", "1x", "0x10", "1.5.2",
        "tru", "true1", "nul", "nulll", "falsey", "NaN", "Infinity",
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{\"a\": %s, \"b\": [%s, %s], \"c\": {\"k\": %s}}",
                 numbers[i], numbers[i], numbers[i], numbers[i]);
        expect_every_selection_like_parse(text);
        snprintf(text, sizeof text, "{\"c\":%s,\"a\":%s}", numbers[i], numbers[i]);
        expect_every_selection_like_parse(text);
    }
}
END_TEST

START_TEST(test_fields_syntax_errors)
{
    static const char *const texts[] = {
        "", " ", "[]", "[{\"a\": 1}]", "\"a\"", "1", "null", "{", "}", "{\"a\"}", "{\"a\" 1}",
        "{\"a\": 1", "{\"a\": 1,}", "{\"a\": 1,, \"b\": 2}", "{\"a\": 1 \"b\": 2}",
        "{\"a\": [1, 2}", "{\"a\": [1, 2,]}", "{\"a\": [,]}", "{\"a\": {\"b\": 1}}}",
        "{\"a\": 1} x", "{\"a\": 1}{}", "{\"a\": 1} \n\t\r ", "{a: 1}", "{'a': 1}",
        "{\"a\": 1, \"b\": }", "{\"a\": 1, \"b\": tru}", "{\"b\": [1, {\"c\": ]}], \"a\": 1}",
        "{\"b\": \"\\q\", \"a\": 1}", "{\xef\xbb\xbf\"a\": 1}", "\xef\xbb\xbf{\"a\": 1}",
        "{\"a\": 1, \"b\": {\"c\": [1, 2, {\"d\": 3]}}}", "{\"a\"\n:\n1\n,\n\"b\"\n:\n2\n}",
        "{\"a\": 1, \"b\": \"x}", "{\"a\": 1, \"b\": [\"]\"]}", "{\"b\": \"}\", \"a\": \"{\"}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        expect_every_selection_like_parse(texts[i]);
}
END_TEST

START_TEST(test_fields_duplicate_keys)
{
    static const char *const texts[] = {
        "{\"a\": 1, \"a\": 2}",
        "{\"b\": 1, \"b\": 2, \"a\": 3}",
        "{\"a\": 1, \"b\": 2, \"c\": 3, \"b\": 4}",
        "{\"a\": {\"x\": 1, \"x\": 2}}",
        "{\"b\": {\"x\": 1, \"y\": {\"z\": 1, \"z\": 2}}, \"a\": 1}",
        "{\"b\": [{\"x\": 1, \"x\": 1}], \"a\": 1}",
        "{\"b\": {\"x\": 1}, \"c\": {\"x\": 1}, \"a\": {\"x\": 1, \"y\": {\"x\": 1}}}",
        "{\"b\": {\"$date\": 1, \"$date\": 1}, \"a\": 1}",
        "{\"a\": 1, \"\\u0061\": 2}",
        "{\"ab\": 1, \"a\": 2, \"abc\": 3, \"b\": 4, \"ba\": 5}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        expect_every_selection_like_parse(texts[i]);
}
END_TEST

/* Text the fast reader leaves to ejson_parse still gives ejson_parse's
 * result: deep nesting, objects with very many keys. */
START_TEST(test_fields_fallbacks)
{
    size_t capacity = 64 * 1024, length = 0;
    char *text = malloc(capacity);
    ck_assert_ptr_nonnull(text);
    /* ... around the reader's limit, and beyond jansson's own (2048) */
    static const int depths[] = {60, 63, 64, 65, 70, 2100};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        int depth = depths[d];
        length = (size_t)snprintf(text, capacity, "{\"b\": 1, \"a\": ");
        for (int i = 0; i < depth; i++)
            length += (size_t)snprintf(text + length, capacity - length, "{\"k\": [");
        for (int i = 0; i < depth; i++)
            length += (size_t)snprintf(text + length, capacity - length, "]}");
        length += (size_t)snprintf(text + length, capacity - length, ", \"c\": 2}");
        expect_every_selection_like_parse(text);
        length = (size_t)snprintf(text, capacity, "{\"b\": 1, \"a\": ");
        for (int i = 0; i < depth; i++)
            text[length++] = '[';
        for (int i = 0; i < depth; i++)
            text[length++] = ']';
        snprintf(text + length, capacity - length, ", \"c\": 2}");
        expect_every_selection_like_parse(text);
    }
    for (int keys = 250; keys <= 260; keys += 5) {
        length = (size_t)snprintf(text, capacity, "{\"a\": 1, \"b\": {");
        for (int i = 0; i < keys; i++)
            length += (size_t)snprintf(text + length, capacity - length, "%s\"k%d\": %d",
                                       i ? ", " : "", i, i);
        length += (size_t)snprintf(text + length, capacity - length, "}, \"c\": 3}");
        expect_every_selection_like_parse(text);
        /* the same, with the last key a duplicate */
        length = (size_t)snprintf(text, capacity, "{\"a\": 1, \"b\": {");
        for (int i = 0; i < keys; i++)
            length += (size_t)snprintf(text + length, capacity - length, "%s\"k%d\": %d",
                                       i ? ", " : "", i, i);
        length += (size_t)snprintf(text + length, capacity - length, ", \"k0\": 0}, \"c\": 3}");
        expect_every_selection_like_parse(text);
    }
    free(text);
}
END_TEST

/* A top-level key: mostly simple names the selections use, sometimes a
 * random one (which may need escapes). */
static json_t *random_field_name(random_source *random)
{
    static const char *const names[] = {"a", "b", "c", "_id", "tags", "summary"};
    if (rng(random) % 4 == 0)
        return random_string(random, true);
    return json_string(names[rng(random) % (sizeof names / sizeof names[0])]);
}

static json_t *random_document(random_source *random)
{
    json_t *document = json_object();
    for (size_t n = rng(random) % 8; n > 0; n--) {
        json_t *name = random_field_name(random);
        json_object_setn_new(document, json_string_value(name), json_string_length(name),
                             random_value(random, 0));
        json_decref(name);
    }
    return document;
}

/* Up to four paths: fields of document, dotted paths into them, and
 * names it does not have. */
static size_t random_paths(random_source *random, const json_t *document, char paths[4][64])
{
    size_t count = rng(random) % 5;
    for (size_t i = 0; i < count; i++) {
        size_t pick = json_object_size(document) ? rng(random) % (json_object_size(document) + 1)
                                                 : 0;
        void *iter = json_object_iter((json_t *)document);
        for (size_t k = 1; k < pick && iter; k++)
            iter = json_object_iter_next((json_t *)document, iter);
        const char *name = pick && iter ? json_object_iter_key(iter) : "missing";
        snprintf(paths[i], 64, "%s%s", name, rng(random) % 3 == 0 ? ".inner" : "");
    }
    return count;
}

/* On canonical text, skipping the unselected fields gives what checking
 * them gives. */
static void expect_canonical_like_checked(const char *text, size_t length,
                                          const char *const *paths, size_t count)
{
    ejson_field_set *fields = field_set_of(paths, count);
    ejson_error error;
    json_t *checked = ejson_parse_fields(text, length, fields, &error);
    json_t *skipped = ejson_parse_canonical_fields(text, length, fields, &error);
    ck_assert_ptr_nonnull(checked);
    ck_assert_msg(skipped && same_tree(checked, skipped), "canonical reading differs:\n%.*s",
                  (int)length, text);
    json_decref(skipped);
    json_decref(checked);
    ejson_field_set_free(fields);
}

/* canonical: text is what the formatter wrote for document. */
static void expect_random_fields_like_parse(random_source *random, const json_t *document,
                                            const char *text, size_t length, bool canonical)
{
    char paths[4][64];
    size_t count = random_paths(random, document, paths);
    const char *pointers[4] = {paths[0], paths[1], paths[2], paths[3]};
    expect_fields_like_parse(text, length, pointers, count);
    if (canonical)
        expect_canonical_like_checked(text, length, pointers, count);
}

START_TEST(test_fields_random_documents)
{
    static const uint64_t seeds[] = {0x243f6a8885a308d3u, 0x13198a2e03707344u};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        random_source source = {seeds[s]}, *random = &source;
        for (int round = 0; round < 2000; round++) {
            json_t *document = random_document(random);
            char *p = pretty(document);
            char *l = line(document);
            expect_random_fields_like_parse(random, document, p, strlen(p), true);
            expect_random_fields_like_parse(random, document, l, strlen(l), true);
            free(l);
            free(p);
            json_decref(document);
        }
    }
}
END_TEST

/* Bytes that matter to a JSON reader, for the mutations below. */
static char random_json_byte(random_source *random)
{
    static const char bytes[] = "{}[]:,\" \\$0123456789-+.eEtrufalsn\n\x01\x80\xc3\xff";
    return bytes[rng(random) % (sizeof bytes - 1)];
}

/* text changed a little at random: a byte deleted, replaced or inserted,
 * or a span copied elsewhere (which often makes a duplicate key). */
static size_t mutate(random_source *random, char *text, size_t length, size_t capacity)
{
    if (length == 0)
        return 0;
    size_t at = rng(random) % length;
    switch (rng(random) % 4) {
    case 0:
        memmove(text + at, text + at + 1, length - at - 1);
        return length - 1;
    case 1:
        text[at] = random_json_byte(random);
        return length;
    case 2:
        if (length + 1 > capacity)
            return length;
        memmove(text + at + 1, text + at, length - at);
        text[at] = random_json_byte(random);
        return length + 1;
    default: {
        size_t from = rng(random) % length;
        size_t span = rng(random) % 24;
        if (span > length - from)
            span = length - from;
        if (length + span > capacity)
            return length;
        char copy[24];
        memcpy(copy, text + from, span);
        memmove(text + at + span, text + at, length - at);
        memcpy(text + at, copy, span);
        return length + span;
    }
    }
}

START_TEST(test_fields_mutated_documents)
{
    random_source source = {0xa4093822299f31d0u}, *random = &source;
    for (int round = 0; round < 3000; round++) {
        json_t *document = random_document(random);
        char *formatted = rng(random) % 2 ? pretty(document) : line(document);
        size_t length = strlen(formatted), capacity = length + 64;
        char *text = malloc(capacity);
        ck_assert_ptr_nonnull(text);
        memcpy(text, formatted, length);
        for (size_t changes = 1 + rng(random) % 3; changes > 0; changes--)
            length = mutate(random, text, length, capacity);
        expect_random_fields_like_parse(random, document, text, length, false);
        free(text);
        free(formatted);
        json_decref(document);
    }
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("ejson");
    TCase *tc = tcase_create("ejson");
    tcase_add_test(tc, test_pretty_exact);
    tcase_add_test(tc, test_round_trip_types);
    tcase_add_test(tc, test_canonical_and_relaxed);
    tcase_add_test(tc, test_doubles);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_semantic_errors);
    tcase_add_test(tc, test_normalize);
    tcase_add_test(tc, test_iso_dates);
    tcase_add_test(tc, test_random_round_trips);
    tcase_add_test(tc, test_fields_selects_top_level_fields);
    tcase_add_test(tc, test_fields_wrappers);
    tcase_add_test(tc, test_fields_strings);
    tcase_add_test(tc, test_fields_numbers);
    tcase_add_test(tc, test_fields_syntax_errors);
    tcase_add_test(tc, test_fields_duplicate_keys);
    tcase_add_test(tc, test_fields_fallbacks);
    tcase_add_test(tc, test_fields_random_documents);
    tcase_add_test(tc, test_fields_mutated_documents);
    suite_add_tcase(suite, tc);
    return suite;
}

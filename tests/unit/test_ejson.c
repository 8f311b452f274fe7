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

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static json_t *random_string(bool key)
{
    static const char *const pieces[] = {"a", "Z", "0", " ", ".", "\"", "\\", "/", "\n", "\t",
                                         "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", "$"};
    char text[64];
    size_t len = 0;
    size_t n = rng() % 8;
    for (size_t i = 0; i < n; i++) {
        const char *piece = pieces[rng() % (sizeof pieces / sizeof pieces[0])];
        memcpy(text + len, piece, strlen(piece));
        len += strlen(piece);
    }
    if (!key && rng() % 4 == 0)
        text[len++] = '\0';     /* strings may hold NUL */
    if (key && len > 0 && text[0] == '$')
        text[0] = '_';
    return json_stringn(text, len);
}

static json_t *random_value(int depth)
{
    uint8_t bytes[20];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)rng();
    switch (rng() % (depth > 3 ? 12 : 14)) {
    case 0: return json_null();
    case 1: return json_boolean(rng() & 1);
    case 2: return json_integer((json_int_t)rng());
    case 3: return json_integer((json_int_t)(rng() % 2001) - 1000);
    case 4: {
        uint64_t bits = rng();
        double d;
        memcpy(&d, &bits, sizeof d);
        return value_new_double(d);
    }
    case 5: return json_real((double)(int64_t)(rng() % 100000) / 64.0);
    case 6: return random_string(false);
    case 7: return value_new_object_id(bytes);
    case 8: return value_new_date(rng() % 3 ? (int64_t)(rng() % INT64_C(300000000000000)) - INT64_C(10000000000)
                                           : (int64_t)rng());
    case 9: return value_new_uuid(bytes);
    case 10: return value_new_binary(bytes, rng() % 20, (uint8_t)(rng() % 6 ? rng() % 8 : 0x80));
    case 11: {
        static const char *const decimals[] = {"0", "-0", "1.50", "-1E+3", "1e-6176", ".5", "5.",
                                               "+7", "Infinity", "-Infinity", "NaN",
                                               "1234567890123456789012345678901234"};
        return value_new_decimal(decimals[rng() % (sizeof decimals / sizeof decimals[0])]);
    }
    case 12: {
        json_t *a = json_array();
        for (size_t n = rng() % 5; n > 0; n--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t n = rng() % 5; n > 0; n--) {
            json_t *k = random_string(true);
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

START_TEST(test_random_round_trips)
{
    for (int round = 0; round < 2000; round++) {
        json_t *doc = json_object();
        for (size_t n = rng() % 6; n > 0; n--) {
            json_t *k = random_string(true);
            json_object_setn_new(doc, json_string_value(k), json_string_length(k), random_value(0));
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
    suite_add_tcase(suite, tc);
    return suite;
}

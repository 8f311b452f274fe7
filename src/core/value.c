/*
 * value.c — the normalized value model (see value.h).
 */
#include "realmfs/value.h"
#include "value_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Small helpers shared with ejson.c                                        */

#define HEX_NONE8 -1, -1, -1, -1, -1, -1, -1, -1
#define HEX_NONE16 HEX_NONE8, HEX_NONE8
const int8_t value_hex_digit_values[256] = {
    HEX_NONE16, HEX_NONE16, HEX_NONE16,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1, -1, -1, -1, -1,        /* '0'..'9' */
    -1, 10, 11, 12, 13, 14, 15, -1, HEX_NONE8, HEX_NONE16,        /* 'A'..'F' */
    -1, 10, 11, 12, 13, 14, 15, -1, HEX_NONE8, HEX_NONE16,        /* 'a'..'f' */
    HEX_NONE16, HEX_NONE16, HEX_NONE16, HEX_NONE16,
    HEX_NONE16, HEX_NONE16, HEX_NONE16, HEX_NONE16,
};

bool value_hex_decode(const char *text, uint8_t *bytes, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        int hi = value_hex_digit(text[2 * i]);
        if (hi < 0)
            return false;
        int lo = value_hex_digit(text[2 * i + 1]);
        if (lo < 0)
            return false;
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool value_uuid_parse(const char *text, size_t length, uint8_t bytes[16])
{
    static const int groups[5] = {8, 4, 4, 4, 12};
    if (length != 36)
        return false;
    size_t pos = 0, out = 0;
    for (int g = 0; g < 5; g++) {
        if (g > 0) {
            if (text[pos] != '-')
                return false;
            pos++;
        }
        if (!value_hex_decode(text + pos, bytes + out, (size_t)groups[g] / 2))
            return false;
        pos += (size_t)groups[g];
        out += (size_t)groups[g] / 2;
    }
    return true;
}

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *value_base64_encode(const uint8_t *data, size_t size)
{
    size_t out_len = (size + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t n = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = base64_alphabet[n >> 18 & 63];
        out[o++] = base64_alphabet[n >> 12 & 63];
        out[o++] = base64_alphabet[n >> 6 & 63];
        out[o++] = base64_alphabet[n & 63];
    }
    if (size - i == 1) {
        uint32_t n = (uint32_t)data[i] << 16;
        out[o++] = base64_alphabet[n >> 18 & 63];
        out[o++] = base64_alphabet[n >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (size - i == 2) {
        uint32_t n = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = base64_alphabet[n >> 18 & 63];
        out[o++] = base64_alphabet[n >> 12 & 63];
        out[o++] = base64_alphabet[n >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

size_t value_utf8_sequence_length(const unsigned char *bytes, size_t available)
{
    unsigned char lead = bytes[0], second_low = 0x80, second_high = 0xBF;
    size_t length;
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        second_low = lead == 0xE0 ? 0xA0 : 0x80;
        second_high = lead == 0xED ? 0x9F : 0xBF;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        second_low = lead == 0xF0 ? 0x90 : 0x80;
        second_high = lead == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (available < length || bytes[1] < second_low || bytes[1] > second_high)
        return 0;
    for (size_t index = 2; index < length; index++)
        if (bytes[index] < 0x80 || bytes[index] > 0xBF)
            return 0;
    return length;
}

/* The four hex digits of a \u escape at text (after the "\u"), or -1. */
static long json_escape_hex_quad(const char *text, size_t available)
{
    if (available < 4)
        return -1;
    long value = 0;
    for (size_t i = 0; i < 4; i++) {
        int digit = value_hex_digit(text[i]);
        if (digit < 0)
            return -1;
        value = value * 16 + digit;
    }
    return value;
}

static bool json_escape_is_high_surrogate(long unit)
{
    return unit >= 0xD800 && unit <= 0xDBFF;
}

static bool json_escape_is_low_surrogate(long unit)
{
    return unit >= 0xDC00 && unit <= 0xDFFF;
}

size_t value_decode_json_escape(const char *text, size_t available, long *code_point)
{
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    if (available < 2)
        return 0;
    if (text[1] != 'u') {
        for (size_t i = 0; i + 1 < sizeof simple; i += 2) {
            if (text[1] == simple[i]) {
                *code_point = (unsigned char)simple[i + 1];
                return 2;
            }
        }
        return 0;
    }
    long unit = json_escape_hex_quad(text + 2, available - 2);
    if (unit < 0 || json_escape_is_low_surrogate(unit))
        return 0;
    if (!json_escape_is_high_surrogate(unit)) {
        *code_point = unit;
        return 6;
    }
    if (available < 8 || text[6] != '\\' || text[7] != 'u')
        return 0;
    long low = json_escape_hex_quad(text + 8, available - 8);
    if (!json_escape_is_low_surrogate(low))
        return 0;
    *code_point = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    return 12;
}

size_t value_encode_utf8(uint32_t code_point, char *out)
{
    if (code_point < 0x80) {
        out[0] = (char)code_point;
        return 1;
    }
    if (code_point < 0x800) {
        out[0] = (char)(0xC0 | (code_point >> 6));
        out[1] = (char)(0x80 | (code_point & 0x3F));
        return 2;
    }
    if (code_point < 0x10000) {
        out[0] = (char)(0xE0 | (code_point >> 12));
        out[1] = (char)(0x80 | ((code_point >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code_point & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code_point >> 18));
    out[1] = (char)(0x80 | ((code_point >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code_point >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code_point & 0x3F));
    return 4;
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

uint8_t *value_base64_decode(const char *text, size_t length, size_t *size, bool *invalid)
{
    *invalid = false;
    /* Strip up to two '=' of padding; when present the total must be a
     * multiple of 4. */
    size_t data_len = length;
    size_t padding = 0;
    while (data_len > 0 && text[data_len - 1] == '=' && padding < 2) {
        data_len--;
        padding++;
    }
    if ((padding > 0 && length % 4 != 0) || data_len % 4 == 1) {
        *invalid = true;
        return NULL;
    }
    uint8_t *out = malloc(data_len / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < data_len; i++) {
        int v = base64_value(text[i]);
        if (v < 0) {
            free(out);
            *invalid = true;
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *size = o;
    return out;
}

/* ------------------------------------------------------------------------ */
/* Types                                                                     */

/* The single key of a wrapper object, or NULL when object is a document. */
static const char *wrapper_key(const json_t *object, json_t **inner)
{
    if (json_object_size(object) != 1)
        return NULL;
    void *iter = json_object_iter((json_t *)object);
    const char *key = json_object_iter_key(iter);
    if (key[0] != '$')
        return NULL;
    if (inner)
        *inner = json_object_iter_value(iter);
    return key;
}

value_type value_type_of(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_NULL:
        return VALUE_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return VALUE_BOOL;
    case JSON_INTEGER:
        return VALUE_INT;
    case JSON_REAL:
        return VALUE_DOUBLE;
    case JSON_STRING:
        return VALUE_STRING;
    case JSON_ARRAY:
        return VALUE_ARRAY;
    case JSON_OBJECT: {
        const char *key = wrapper_key(value, NULL);
        if (!key)
            return VALUE_DOCUMENT;
        if (strcmp(key, "$oid") == 0)
            return VALUE_OBJECT_ID;
        if (strcmp(key, "$date") == 0)
            return VALUE_DATE;
        if (strcmp(key, "$numberDouble") == 0)
            return VALUE_DOUBLE;
        if (strcmp(key, "$numberDecimal") == 0)
            return VALUE_DECIMAL;
        if (strcmp(key, "$uuid") == 0)
            return VALUE_UUID;
        if (strcmp(key, "$binary") == 0)
            return VALUE_BINARY;
        return VALUE_DOCUMENT;
    }
    }
    return VALUE_NULL;
}

const char *value_type_name(value_type type)
{
    switch (type) {
    case VALUE_NULL: return "null";
    case VALUE_BOOL: return "bool";
    case VALUE_INT: return "long";
    case VALUE_DOUBLE: return "double";
    case VALUE_DECIMAL: return "decimal";
    case VALUE_STRING: return "string";
    case VALUE_OBJECT_ID: return "objectId";
    case VALUE_DATE: return "date";
    case VALUE_UUID: return "uuid";
    case VALUE_BINARY: return "binData";
    case VALUE_ARRAY: return "array";
    case VALUE_DOCUMENT: return "object";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Constructors                                                              */

static json_t *wrap(const char *key, json_t *inner)
{
    if (!inner)
        return NULL;
    json_t *object = json_object();
    if (!object || json_object_set_new(object, key, inner) != 0) {
        json_decref(object);
        return NULL;
    }
    return object;
}

json_t *value_new_double(double number)
{
    if (isnan(number))
        return wrap("$numberDouble", json_string("NaN"));
    if (isinf(number))
        return wrap("$numberDouble", json_string(number > 0 ? "Infinity" : "-Infinity"));
    return json_real(number);
}

static void hex_encode(const uint8_t *bytes, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * size] = '\0';
}

json_t *value_new_object_id(const uint8_t bytes[VALUE_OBJECT_ID_SIZE])
{
    char hex[2 * VALUE_OBJECT_ID_SIZE + 1];
    hex_encode(bytes, VALUE_OBJECT_ID_SIZE, hex);
    return wrap("$oid", json_string(hex));
}

json_t *value_new_date(int64_t milliseconds)
{
    return wrap("$date", json_integer((json_int_t)milliseconds));
}

json_t *value_new_uuid(const uint8_t bytes[VALUE_UUID_SIZE])
{
    char hex[2 * VALUE_UUID_SIZE + 1];
    char text[37];
    hex_encode(bytes, VALUE_UUID_SIZE, hex);
    snprintf(text, sizeof text, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    return wrap("$uuid", json_string(text));
}

json_t *value_new_decimal(const char *text)
{
    return wrap("$numberDecimal", json_string(text));
}

/* Binary of subtype 4 holding 16 bytes is a UUID, and is returned as
 * {"$uuid": ...} so that the normalized form stays unique. */
json_t *value_new_binary(const void *data, size_t size, uint8_t subtype)
{
    if (subtype == 4 && size == VALUE_UUID_SIZE)
        return value_new_uuid(data);
    char *b64 = value_base64_encode(data, size);
    if (!b64)
        return NULL;
    char sub[3];
    snprintf(sub, sizeof sub, "%02x", subtype);
    json_t *inner = json_object();
    if (!inner || json_object_set_new(inner, "base64", json_string(b64)) != 0 ||
        json_object_set_new(inner, "subType", json_string(sub)) != 0) {
        free(b64);
        json_decref(inner);
        return NULL;
    }
    free(b64);
    return wrap("$binary", inner);
}

/* ------------------------------------------------------------------------ */
/* ObjectId generation                                                       */

static pthread_mutex_t oid_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t oid_pid;                 /* process the random bytes belong to */
static uint8_t oid_random[5];
static uint32_t oid_counter;

static void fill_random(void *buffer, size_t size)
{
    uint8_t *p = buffer;
    while (size > 0) {
        ssize_t got = getrandom(p, size, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            /* No entropy source: fall back to something unpredictable
             * enough for identifiers (never for secrets). */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40 ^
                         (uint64_t)(uintptr_t)p;
            for (; size > 0; size--) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *p++ = (uint8_t)x;
            }
            return;
        }
        p += got;
        size -= (size_t)got;
    }
}

void value_generate_object_id(uint8_t bytes[VALUE_OBJECT_ID_SIZE])
{
    uint32_t seconds = (uint32_t)time(NULL);
    uint8_t random[5];
    uint32_t counter;

    pthread_mutex_lock(&oid_lock);
    pid_t pid = getpid();
    if (pid != oid_pid) {   /* first use, or a forked child */
        uint32_t start;
        fill_random(oid_random, sizeof oid_random);
        fill_random(&start, sizeof start);
        oid_counter = start;
        oid_pid = pid;
    }
    memcpy(random, oid_random, sizeof random);
    counter = oid_counter++;
    pthread_mutex_unlock(&oid_lock);

    bytes[0] = (uint8_t)(seconds >> 24);
    bytes[1] = (uint8_t)(seconds >> 16);
    bytes[2] = (uint8_t)(seconds >> 8);
    bytes[3] = (uint8_t)seconds;
    memcpy(bytes + 4, random, 5);
    bytes[9] = (uint8_t)(counter >> 16);
    bytes[10] = (uint8_t)(counter >> 8);
    bytes[11] = (uint8_t)counter;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

static json_t *wrapped(const json_t *value, const char *key)
{
    if (!json_is_object(value))
        return NULL;
    json_t *inner;
    const char *k = wrapper_key(value, &inner);
    if (!k || strcmp(k, key) != 0)
        return NULL;
    return inner;
}

bool value_get_object_id(const json_t *value, uint8_t bytes[VALUE_OBJECT_ID_SIZE])
{
    json_t *inner = wrapped(value, "$oid");
    if (!json_is_string(inner) || json_string_length(inner) != 2 * VALUE_OBJECT_ID_SIZE)
        return false;
    return value_hex_decode(json_string_value(inner), bytes, VALUE_OBJECT_ID_SIZE);
}

bool value_get_date(const json_t *value, int64_t *milliseconds)
{
    json_t *inner = wrapped(value, "$date");
    if (!json_is_integer(inner))
        return false;
    *milliseconds = (int64_t)json_integer_value(inner);
    return true;
}

bool value_get_uuid(const json_t *value, uint8_t bytes[VALUE_UUID_SIZE])
{
    json_t *inner = wrapped(value, "$uuid");
    if (!json_is_string(inner))
        return false;
    return value_uuid_parse(json_string_value(inner), json_string_length(inner), bytes);
}

/* Decimal text (validated by ejson) as a long double.  Digits beyond the
 * precision of long double are lost: 34-digit decimals that differ only in
 * their last digits may compare equal. */
static bool decimal_number(const json_t *inner, long double *number)
{
    if (!json_is_string(inner))
        return false;
    const char *text = json_string_value(inner);
    if (strcmp(text, "Infinity") == 0 || strcmp(text, "+Infinity") == 0) {
        *number = HUGE_VALL;
        return true;
    }
    if (strcmp(text, "-Infinity") == 0) {
        *number = -HUGE_VALL;
        return true;
    }
    if (strcmp(text, "NaN") == 0 || strcmp(text, "-NaN") == 0) {
        *number = NAN;
        return true;
    }
    char *end;
    errno = 0;
    long double n = strtold(text, &end);
    if (end == text || *end != '\0')
        return false;
    *number = n;
    return true;
}

static bool double_of(const json_t *value, double *number)
{
    if (json_is_real(value)) {
        *number = json_real_value(value);
        return true;
    }
    json_t *inner = wrapped(value, "$numberDouble");
    if (!json_is_string(inner))
        return false;
    const char *text = json_string_value(inner);
    if (strcmp(text, "Infinity") == 0)
        *number = HUGE_VAL;
    else if (strcmp(text, "-Infinity") == 0)
        *number = -HUGE_VAL;
    else if (strcmp(text, "NaN") == 0)
        *number = NAN;
    else {
        char *end;
        *number = strtod(text, &end);
        if (end == text || *end != '\0')
            return false;
    }
    return true;
}

bool value_get_number(const json_t *value, long double *number)
{
    if (json_is_integer(value)) {
        *number = (long double)json_integer_value(value);
        return true;
    }
    double d;
    if (double_of(value, &d)) {
        *number = d;
        return true;
    }
    json_t *inner = wrapped(value, "$numberDecimal");
    if (inner)
        return decimal_number(inner, number);
    return false;
}

/* ------------------------------------------------------------------------ */
/* Comparison                                                                */

static bool is_number(value_type t)
{
    return t == VALUE_INT || t == VALUE_DOUBLE || t == VALUE_DECIMAL;
}

static int sign_of_ld(long double a, long double b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

/* Compare bytes then length (shorter prefix first). */
static int compare_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Decoded bytes and subtype of a binary wrapper. */
static uint8_t *binary_bytes(const json_t *value, size_t *size, int *subtype)
{
    json_t *inner = wrapped(value, "$binary");
    json_t *b64 = json_object_get(inner, "base64");
    json_t *sub = json_object_get(inner, "subType");
    if (!json_is_string(b64) || !json_is_string(sub))
        return NULL;
    *subtype = (int)strtol(json_string_value(sub), NULL, 16);
    bool invalid;
    return value_base64_decode(json_string_value(b64), json_string_length(b64), size, &invalid);
}

/* int64 against a finite or infinite double, exactly (no rounding of the
 * integer to double). */
static int compare_int_double(int64_t i, double d)
{
    if (d >= 9223372036854775808.0)     /* 2^63 */
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double t = trunc(d);
    int64_t ti = (int64_t)t;            /* exact: |t| < 2^63 */
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

/* Numbers: returns false when either is NaN.  Integers and doubles compare
 * exactly; a decimal goes through long double (see decimal_number). */
static bool compare_numbers(const json_t *a, const json_t *b, int *order)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        *order = x < y ? -1 : x > y ? 1 : 0;
        return true;
    }
    double da, db;
    bool a_double = double_of(a, &da), b_double = double_of(b, &db);
    if ((a_double && isnan(da)) || (b_double && isnan(db)))
        return false;
    if (a_double && b_double) {
        *order = da < db ? -1 : da > db ? 1 : 0;
        return true;
    }
    if (a_double && json_is_integer(b)) {
        *order = -compare_int_double((int64_t)json_integer_value(b), da);
        return true;
    }
    if (b_double && json_is_integer(a)) {
        *order = compare_int_double((int64_t)json_integer_value(a), db);
        return true;
    }
    long double x, y;
    if (!value_get_number(a, &x) || !value_get_number(b, &y))
        return false;
    if (isnan(x) || isnan(y))
        return false;
    *order = sign_of_ld(x, y);
    return true;
}

bool value_compare(const json_t *a, const json_t *b, int *order)
{
    value_type ta = value_type_of(a), tb = value_type_of(b);
    if (is_number(ta) && is_number(tb))
        return compare_numbers(a, b, order);
    if (ta != tb)
        return false;
    switch (ta) {
    case VALUE_NULL:
        *order = 0;
        return true;
    case VALUE_BOOL: {
        int x = json_is_true(a), y = json_is_true(b);
        *order = x - y;
        return true;
    }
    case VALUE_STRING:
        *order = compare_bytes(json_string_value(a), json_string_length(a), json_string_value(b),
                               json_string_length(b));
        return true;
    case VALUE_OBJECT_ID: {
        uint8_t x[VALUE_OBJECT_ID_SIZE], y[VALUE_OBJECT_ID_SIZE];
        if (!value_get_object_id(a, x) || !value_get_object_id(b, y))
            return false;
        *order = compare_bytes(x, sizeof x, y, sizeof y);
        return true;
    }
    case VALUE_UUID: {
        uint8_t x[VALUE_UUID_SIZE], y[VALUE_UUID_SIZE];
        if (!value_get_uuid(a, x) || !value_get_uuid(b, y))
            return false;
        *order = compare_bytes(x, sizeof x, y, sizeof y);
        return true;
    }
    case VALUE_DATE: {
        int64_t x, y;
        if (!value_get_date(a, &x) || !value_get_date(b, &y))
            return false;
        *order = x < y ? -1 : x > y ? 1 : 0;
        return true;
    }
    case VALUE_BINARY: {
        /* Bytes like strings (memcmp, then length), then the subtype. */
        size_t xs, ys;
        int xt, yt;
        uint8_t *x = binary_bytes(a, &xs, &xt);
        uint8_t *y = x ? binary_bytes(b, &ys, &yt) : NULL;
        if (!x || !y) {
            free(x);
            return false;
        }
        int c = compare_bytes(x, xs, y, ys);
        free(x);
        free(y);
        *order = c != 0 ? c : xt < yt ? -1 : xt > yt ? 1 : 0;
        return true;
    }
    default:    /* arrays, documents; numbers handled above */
        return false;
    }
}

bool value_equal(const json_t *a, const json_t *b)
{
    value_type ta = value_type_of(a), tb = value_type_of(b);
    if (is_number(ta) && is_number(tb)) {
        int order;
        if (compare_numbers(a, b, &order))
            return order == 0;
        /* One at least is NaN: NaN equals only NaN. */
        long double x, y;
        return value_get_number(a, &x) && value_get_number(b, &y) && isnan(x) && isnan(y);
    }
    if (ta != tb)
        return false;
    if (ta == VALUE_ARRAY) {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!value_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (ta == VALUE_DOCUMENT) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        size_t key_len;
        json_t *va;
        json_object_keylen_foreach((json_t *)a, key, key_len, va) {
            json_t *vb = json_object_getn(b, key, key_len);
            if (!vb || !value_equal(va, vb))
                return false;
        }
        return true;
    }
    int order;
    return value_compare(a, b, &order) && order == 0;
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */

json_t *value_get_path(const json_t *document, const char *dotted_path)
{
    if (!document || !dotted_path || !*dotted_path)
        return NULL;
    const json_t *current = document;
    const char *p = dotted_path;
    for (;;) {
        if (!json_is_object(current) || value_type_of(current) != VALUE_DOCUMENT)
            return NULL;
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0)
            return NULL;
        json_t *next = json_object_getn(current, p, len);
        if (!next)
            return NULL;
        if (!dot)
            return next;
        current = next;
        p = dot + 1;
    }
}

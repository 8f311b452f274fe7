/*
 * ejson.c — MongoDB Extended JSON v2 reading (relaxed and canonical) and
 * relaxed canonical-pretty writing.  See ejson.h and value.h.
 */
#include "realmfs/ejson.h"
#include "realmfs/value.h"
#include "ejson_internal.h"
#include "value_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Dates                                                                     */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *year, int *month, int *day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

/* Exactly n decimal digits at *p; advances *p. */
static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

int ejson_parse_iso_date(const char *text, int64_t *milliseconds)
{
    if (!text)
        return -EINVAL;
    const char *p = text;
    int year, month, day, hour, minute, second;
    if (!take_digits(&p, 4, &year) || !take_char(&p, '-') || !take_digits(&p, 2, &month) ||
        !take_char(&p, '-') || !take_digits(&p, 2, &day))
        return -EINVAL;
    if (*p != 'T' && *p != 't')
        return -EINVAL;
    p++;
    if (!take_digits(&p, 2, &hour) || !take_char(&p, ':') || !take_digits(&p, 2, &minute) ||
        !take_char(&p, ':') || !take_digits(&p, 2, &second))
        return -EINVAL;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59)
        return -EINVAL;

    int millis = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        int scale = 100;
        for (; *p >= '0' && *p <= '9'; p++) {   /* digits beyond ms are dropped */
            millis += (*p - '0') * scale;
            scale /= 10;
        }
    }

    int offset_minutes = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (!take_digits(&p, 2, &oh))
            return -EINVAL;
        take_char(&p, ':');
        if (!take_digits(&p, 2, &om))
            return -EINVAL;
        if (oh > 23 || om > 59)
            return -EINVAL;
        offset_minutes = sign * (oh * 60 + om);
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;

    int64_t days = days_from_civil(year, month, day);
    int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    *milliseconds = seconds * 1000 + millis;
    return 0;
}

/* First millisecond of year 10000. */
#define DATE_FORMAT_LIMIT (INT64_C(253402300800) * 1000)

int ejson_format_iso_date(int64_t milliseconds, char *out, size_t size)
{
    if (milliseconds < 0 || milliseconds >= DATE_FORMAT_LIMIT)
        return -ERANGE;
    int64_t days = milliseconds / 86400000;
    int64_t rest = milliseconds % 86400000;
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    int ms = (int)(rest % 1000);
    int64_t secs = rest / 1000;
    int n;
    if (ms)
        n = snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)year, month, day,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), ms);
    else
        n = snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)year, month, day,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    if (n < 0 || (size_t)n >= size)
        return -ENOSPC;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Errors and field paths                                                    */

typedef struct path {
    const struct path *parent;
    const char *key;     /* NULL for an array index */
    size_t index;
} path;

static void path_render(const path *p, char *out, size_t size, size_t *len)
{
    if (!p)
        return;
    path_render(p->parent, out, size, len);
    int n;
    if (p->key)
        n = snprintf(out + *len, size - *len, "%s%s", *len ? "." : "", p->key);
    else
        n = snprintf(out + *len, size - *len, "[%zu]", p->index);
    if (n > 0)
        *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_error(ejson_error *error, const path *p, const char *format, ...)
{
    if (!error)
        return;
    char message[sizeof error->message];
    va_list ap;
    va_start(ap, format);
    vsnprintf(message, sizeof message, format, ap);
    va_end(ap);
    error->line = 0;
    error->column = 0;
    if (p) {
        char where[160];
        size_t len = 0;
        where[0] = '\0';
        path_render(p, where, sizeof where, &len);
        if (snprintf(error->message, sizeof error->message, "field \"%s\": %s", where,
                     message) < 0)   /* long messages are cut short */
            error->message[0] = '\0';
    } else {
        snprintf(error->message, sizeof error->message, "%s", message);
    }
}

/* ------------------------------------------------------------------------ */
/* Normalization                                                             */

static json_t *normalize_value(const json_t *raw, const path *p, ejson_error *error);

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* "-?digits" as int64; 1 when too large, -1 when malformed. */
static int parse_int64(const char *text, int64_t *out)
{
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (!all_digits(digits))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE)
        return 1;
    *out = v;
    return 0;
}

/* Decimal grammar: [sign] (digits [. digits*] | . digits) [e [sign] digits]. */
static bool number_syntax(const char *s, bool allow_plus)
{
    if (*s == '-' || (allow_plus && *s == '+'))
        s++;
    bool digits = false;
    while (isdigit((unsigned char)*s)) {
        s++;
        digits = true;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            digits = true;
        }
    }
    if (!digits)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

/* The string member of a wrapper, or NULL (a string holding NUL counts as
 * malformed). */
static const char *wrapper_string(const json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return NULL;
    return s;
}

static json_t *oom(ejson_error *error)
{
    set_error(error, NULL, "out of memory");
    return NULL;
}

static json_t *made(json_t *value, ejson_error *error)
{
    return value ? value : oom(error);
}

static const char date_forms_message[] =
    "$date must be an ISO-8601 string, {\"$numberLong\": \"<ms>\"} or an integer";

/* {"$date": ...} in its forms other than an ISO-8601 string: an integer,
 * or {"$numberLong": "<ms>"}. */
static json_t *normalize_date_number(const json_t *v, const path *p, ejson_error *error)
{
    int64_t ms;
    if (json_is_integer(v))
        return made(value_new_date((int64_t)json_integer_value(v)), error);
    if (json_is_object(v) && json_object_size(v) == 1) {
        const char *n = wrapper_string(json_object_get(v, "$numberLong"));
        if (n) {
            int r = parse_int64(n, &ms);
            if (r == 0)
                return made(value_new_date(ms), error);
            if (r > 0) {
                set_error(error, p, "$date number is too large for a 64-bit integer");
                return NULL;
            }
        }
    }
    set_error(error, p, "%s", date_forms_message);
    return NULL;
}

static json_t *normalize_binary(const char *b64, const char *subtype, const path *p,
                                ejson_error *error)
{
    size_t sublen = strlen(subtype);
    if (sublen < 1 || sublen > 2 || value_hex_digit(subtype[0]) < 0 ||
        (sublen == 2 && value_hex_digit(subtype[1]) < 0)) {
        set_error(error, p, "$binary subType must be one or two hexadecimal digits");
        return NULL;
    }
    uint8_t sub = (uint8_t)strtoul(subtype, NULL, 16);
    size_t size;
    bool invalid;
    uint8_t *data = value_base64_decode(b64, strlen(b64), &size, &invalid);
    if (!data) {
        if (invalid) {
            set_error(error, p, "$binary base64 is not valid base64");
            return NULL;
        }
        return oom(error);
    }
    json_t *result = value_new_binary(data, size, sub);
    free(data);
    return made(result, error);
}

/* One field of a wrapper object other than its first; NULL if none. */
static const char *second_key(const json_t *object)
{
    void *iter = json_object_iter((json_t *)object);
    iter = json_object_iter_next((json_t *)object, iter);
    return iter ? json_object_iter_key(iter) : NULL;
}

/* The members of a string wrapper: s is its string, or NULL when the member
 * is not a string (or holds NUL).  Each returns false with the error set. */

static bool decode_object_id(const char *s, const path *p, ejson_error *error,
                             ejson_scalar *scalar)
{
    if (!s || strlen(s) != 2 * VALUE_OBJECT_ID_SIZE ||
        !value_hex_decode(s, scalar->bytes, VALUE_OBJECT_ID_SIZE)) {
        set_error(error, p, "$oid must be 24 hexadecimal digits");
        return false;
    }
    scalar->type = VALUE_OBJECT_ID;
    return true;
}

static bool decode_iso_date(const char *s, const path *p, ejson_error *error,
                            ejson_scalar *scalar)
{
    if (!s) {
        set_error(error, p, "%s", date_forms_message);
        return false;
    }
    if (ejson_parse_iso_date(s, &scalar->integer) != 0) {
        set_error(error, p, "$date \"%.60s\" is not an ISO-8601 date", s);
        return false;
    }
    scalar->type = VALUE_DATE;
    return true;
}

static bool decode_number_long(const char *s, const path *p, ejson_error *error,
                               ejson_scalar *scalar)
{
    int r = s ? parse_int64(s, &scalar->integer) : -1;
    if (r > 0) {
        set_error(error, p, "$numberLong is too large for a 64-bit integer");
        return false;
    }
    if (r < 0) {
        set_error(error, p, "$numberLong must be a string of decimal digits");
        return false;
    }
    scalar->type = VALUE_INT;
    return true;
}

static bool decode_number_int(const char *s, const path *p, ejson_error *error,
                              ejson_scalar *scalar)
{
    int r = s ? parse_int64(s, &scalar->integer) : -1;
    if (r != 0 || scalar->integer < INT32_MIN || scalar->integer > INT32_MAX) {
        set_error(error, p, "$numberInt must be a string holding a 32-bit integer");
        return false;
    }
    scalar->type = VALUE_INT;
    return true;
}

static bool decode_number_double(const char *s, const path *p, ejson_error *error,
                                 ejson_scalar *scalar)
{
    if (s && strcmp(s, "Infinity") == 0) {
        scalar->number = HUGE_VAL;
    } else if (s && strcmp(s, "-Infinity") == 0) {
        scalar->number = -HUGE_VAL;
    } else if (s && strcmp(s, "NaN") == 0) {
        scalar->number = NAN;
    } else if (s && number_syntax(s, false)) {
        errno = 0;
        scalar->number = strtod(s, NULL);
        if (isinf(scalar->number)) {
            set_error(error, p, "$numberDouble \"%.60s\" is too large for a double", s);
            return false;
        }
    } else {
        set_error(error, p,
                  "$numberDouble must be a decimal number, \"Infinity\", \"-Infinity\" or "
                  "\"NaN\"");
        return false;
    }
    scalar->type = VALUE_DOUBLE;
    return true;
}

static bool decode_number_decimal(const char *s, const path *p, ejson_error *error,
                                  ejson_scalar *scalar)
{
    if (!s || !(number_syntax(s, true) || strcmp(s, "Infinity") == 0 ||
                strcmp(s, "-Infinity") == 0 || strcmp(s, "NaN") == 0)) {
        set_error(error, p,
                  "$numberDecimal must be a decimal number, \"Infinity\", \"-Infinity\" or "
                  "\"NaN\"");
        return false;
    }
    scalar->type = VALUE_DECIMAL;
    scalar->decimal = s;
    return true;
}

static bool decode_uuid(const char *s, const path *p, ejson_error *error, ejson_scalar *scalar)
{
    if (!s || !value_uuid_parse(s, strlen(s), scalar->bytes)) {
        set_error(error, p, "$uuid must be 8-4-4-4-12 hexadecimal digits");
        return false;
    }
    scalar->type = VALUE_UUID;
    return true;
}

typedef bool string_wrapper_decoder(const char *s, const path *p, ejson_error *error,
                                    ejson_scalar *scalar);

/* The decoder of a wrapper whose member is a string, or NULL when key (of
 * length bytes) is not one of them ($binary and $type are not: their
 * members are documents or come in pairs). */
static string_wrapper_decoder *string_wrapper_decoder_of(const char *key, size_t length)
{
#define DECODER(key, decode) {key, sizeof key - 1, decode}
    static const struct {
        const char *key;
        size_t length;
        string_wrapper_decoder *decode;
    } decoders[] = {
        DECODER("$oid", decode_object_id),
        DECODER("$date", decode_iso_date),
        DECODER("$numberLong", decode_number_long),
        DECODER("$numberInt", decode_number_int),
        DECODER("$numberDouble", decode_number_double),
        DECODER("$numberDecimal", decode_number_decimal),
        DECODER("$uuid", decode_uuid),
    };
#undef DECODER
    for (size_t i = 0; i < sizeof decoders / sizeof decoders[0]; i++)
        if (length == decoders[i].length && memcmp(key, decoders[i].key, length) == 0)
            return decoders[i].decode;
    return NULL;
}

bool ejson_decode_string_wrapper(const char *key, size_t key_length, const char *text,
                                 ejson_scalar *scalar)
{
    string_wrapper_decoder *decode = string_wrapper_decoder_of(key, key_length);
    return decode != NULL && decode(text, NULL, NULL, scalar);
}

json_t *ejson_scalar_to_json(const ejson_scalar *scalar)
{
    switch (scalar->type) {
    case VALUE_OBJECT_ID:
        return value_new_object_id(scalar->bytes);
    case VALUE_DATE:
        return value_new_date(scalar->integer);
    case VALUE_INT:
        return json_integer((json_int_t)scalar->integer);
    case VALUE_DOUBLE:
        return value_new_double(scalar->number);
    case VALUE_DECIMAL:
        return value_new_decimal(scalar->decimal);
    case VALUE_UUID:
        return value_new_uuid(scalar->bytes);
    default:
        return NULL;
    }
}

/* {"$binary": {"base64": "<base64>", "subType": "<hex>"}}: v is the member. */
static json_t *normalize_binary_document(const json_t *v, const path *p, ejson_error *error)
{
    const char *b64 = NULL, *sub = NULL;
    if (json_is_object(v) && json_object_size(v) == 2) {
        b64 = wrapper_string(json_object_get(v, "base64"));
        sub = wrapper_string(json_object_get(v, "subType"));
    }
    if (!b64 || !sub) {
        set_error(error, p, "$binary must be {\"base64\": \"<base64>\", \"subType\": \"<hex>\"}");
        return NULL;
    }
    return normalize_binary(b64, sub, p, error);
}

static json_t *normalize_wrapper(const json_t *raw, const char *key, const path *p,
                                 ejson_error *error)
{
    size_t size = json_object_size(raw);
    json_t *v = json_object_get(raw, key);

    /* Legacy binary: {"$binary": "<b64>", "$type": "<hex>"} in either order. */
    if ((strcmp(key, "$binary") == 0 && json_is_string(v)) || strcmp(key, "$type") == 0) {
        const char *b64 = wrapper_string(json_object_get(raw, "$binary"));
        const char *type = wrapper_string(json_object_get(raw, "$type"));
        if (size != 2 || !b64 || !type) {
            if (strcmp(key, "$type") == 0 && !json_object_get(raw, "$binary")) {
                set_error(error, p, "unsupported Extended JSON type $type");
                return NULL;
            }
            set_error(error, p,
                      "legacy $binary must be {\"$binary\": \"<base64>\", \"$type\": \"<hex>\"}");
            return NULL;
        }
        return normalize_binary(b64, type, p, error);
    }

    string_wrapper_decoder *decode = string_wrapper_decoder_of(key, strlen(key));
    if (!decode && strcmp(key, "$binary") != 0) {
        set_error(error, p, "unsupported Extended JSON type %.60s", key);
        return NULL;
    }
    if (size != 1) {
        set_error(error, p, "%s may not have other fields (found \"%.60s\")", key,
                  second_key(raw));
        return NULL;
    }
    if (!decode)
        return normalize_binary_document(v, p, error);
    const char *s = wrapper_string(v);
    if (strcmp(key, "$date") == 0 && !s)
        return normalize_date_number(v, p, error);
    ejson_scalar scalar;
    if (!decode(s, p, error, &scalar))
        return NULL;
    return made(ejson_scalar_to_json(&scalar), error);
}

/* An object read as a document: every key is a field name. */
static json_t *normalize_document(const json_t *raw, const path *p, ejson_error *error)
{
    json_t *out = json_object();
    if (!out)
        return oom(error);
    const char *key;
    size_t key_len;
    json_t *member;
    json_object_keylen_foreach((json_t *)raw, key, key_len, member) {
        path child = {p, key, 0};
        if (strlen(key) != key_len) {
            set_error(error, p, "field names may not contain NUL");
            json_decref(out);
            return NULL;
        }
        if (key[0] == '$') {
            set_error(error, &child, "field names may not start with '$'");
            json_decref(out);
            return NULL;
        }
        json_t *value = normalize_value(member, &child, error);
        if (!value) {
            json_decref(out);
            return NULL;
        }
        if (json_object_setn_new(out, key, key_len, value) != 0) {
            json_decref(out);
            return oom(error);
        }
    }
    return out;
}

static json_t *normalize_value(const json_t *raw, const path *p, ejson_error *error)
{
    switch (json_typeof(raw)) {
    case JSON_NULL:
        return json_null();
    case JSON_TRUE:
        return json_true();
    case JSON_FALSE:
        return json_false();
    case JSON_INTEGER:
        return made(json_integer(json_integer_value(raw)), error);
    case JSON_REAL:
        return made(value_new_double(json_real_value(raw)), error);
    case JSON_STRING: {
        json_t *s = json_stringn(json_string_value(raw), json_string_length(raw));
        if (!s)
            set_error(error, p, "string is not valid UTF-8");
        return s;
    }
    case JSON_ARRAY: {
        json_t *out = json_array();
        if (!out)
            return oom(error);
        for (size_t i = 0; i < json_array_size(raw); i++) {
            path child = {p, NULL, i};
            json_t *value = normalize_value(json_array_get(raw, i), &child, error);
            if (!value) {
                json_decref(out);
                return NULL;
            }
            if (json_array_append_new(out, value) != 0) {
                json_decref(out);
                return oom(error);
            }
        }
        return out;
    }
    case JSON_OBJECT: {
        void *iter = json_object_iter((json_t *)raw);
        if (iter) {
            const char *key = json_object_iter_key(iter);
            if (key[0] == '$')
                return normalize_wrapper(raw, key, p, error);
        }
        return normalize_document(raw, p, error);
    }
    }
    set_error(error, p, "unknown JSON type");
    return NULL;
}

json_t *ejson_normalize(const json_t *raw, ejson_error *error)
{
    if (!raw) {
        set_error(error, NULL, "no value");
        return NULL;
    }
    return normalize_value(raw, NULL, error);
}

json_t *ejson_parse_reference(const char *text, size_t length, ejson_error *error)
{
    json_error_t jerr;
    json_t *raw = json_loadb(text, length, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!raw) {
        if (error) {
            error->line = jerr.line > 0 ? jerr.line : 0;
            error->column = jerr.line > 0 ? (jerr.column > 0 ? jerr.column : 1) : 0;
            const char *near = strstr(jerr.text, " near ");
            if (json_error_code(&jerr) == json_error_numeric_overflow &&
                strncmp(jerr.text, "too big", 7) == 0)
                snprintf(error->message, sizeof error->message,
                         "number is too large for a 64-bit integer%s", near ? near : "");
            else if (json_error_code(&jerr) == json_error_numeric_overflow)
                snprintf(error->message, sizeof error->message,
                         "number is too large for a double%s", near ? near : "");
            else
                snprintf(error->message, sizeof error->message, "%s", jerr.text);
        }
        return NULL;
    }
    if (!json_is_object(raw)) {
        json_decref(raw);
        set_error(error, NULL, "the top level must be a JSON object");
        return NULL;
    }
    json_t *result = normalize_document(raw, NULL, error);
    json_decref(raw);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Formatting                                                                */

typedef struct buffer {
    char *data;
    size_t length;
    size_t capacity;
    bool failed;
} buffer;

static void buf_add(buffer *b, const char *data, size_t n)
{
    if (b->failed)
        return;
    if (b->length + n + 1 > b->capacity) {
        size_t cap = b->capacity ? b->capacity : 256;
        while (b->length + n + 1 > cap)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = cap;
    }
    memcpy(b->data + b->length, data, n);
    b->length += n;
    b->data[b->length] = '\0';
}

static void buf_str(buffer *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_indent(buffer *b, int indent)
{
    static const char spaces[] = "                                ";
    while (indent > 0) {
        int n = indent < 32 ? indent : 32;
        buf_add(b, spaces, (size_t)n);
        indent -= n;
    }
}

static void buf_json_string(buffer *b, const char *s, size_t n)
{
    buf_add(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *escape = NULL;
        char tmp[8];
        switch (c) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\n': escape = "\\n"; break;
        case '\t': escape = "\\t"; break;
        case '\r': escape = "\\r"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                escape = tmp;
            }
        }
        if (escape) {
            buf_add(b, s + start, i - start);
            buf_str(b, escape);
            start = i + 1;
        }
    }
    buf_add(b, s + start, n - start);
    buf_add(b, "\"", 1);
}

/* Shortest %.Ng text that reads back to the same double, always with a
 * '.' or an exponent. */
static void format_double(double d, char *out, size_t size)
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, size, "%.*g", precision, d);
        if (strtod(out, NULL) == d)
            break;
    }
    /* Guard against a locale whose decimal point is ','. */
    for (char *c = out; *c; c++)
        if (*c == ',')
            *c = '.';
    if (!strpbrk(out, ".eEn")) /* no '.', exponent, "inf" or "nan" */
        strncat(out, ".0", size - strlen(out) - 1);
}

#define SAFE_INTEGER INT64_C(9007199254740992) /* 2^53 */

static void emit(buffer *b, const json_t *v, int indent, bool pretty);

static void emit_object(buffer *b, const json_t *o, int indent, bool pretty)
{
    if (json_object_size(o) == 0) {
        buf_str(b, "{}");
        return;
    }
    buf_str(b, pretty ? "{\n" : "{");
    const char *key;
    size_t key_len;
    json_t *member;
    bool first = true;
    json_object_keylen_foreach((json_t *)o, key, key_len, member) {
        if (!first)
            buf_str(b, pretty ? ",\n" : ", ");
        first = false;
        if (pretty)
            buf_indent(b, indent + 2);
        buf_json_string(b, key, key_len);
        buf_str(b, ": ");
        emit(b, member, indent + 2, pretty);
    }
    if (pretty) {
        buf_str(b, "\n");
        buf_indent(b, indent);
    }
    buf_str(b, "}");
}

/* Print {"key": inner} (taking the reference to inner) like any object. */
static void emit_wrapper(buffer *b, const char *key, json_t *inner, int indent, bool pretty)
{
    json_t *o = inner ? json_object() : NULL;
    if (!o || json_object_set_new(o, key, inner) != 0) {
        if (!o)
            json_decref(inner);
        json_decref(o);
        b->failed = true;
        return;
    }
    emit_object(b, o, indent, pretty);
    json_decref(o);
}

static json_t *int64_string(int64_t n)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, n);
    return json_string(text);
}

static void emit(buffer *b, const json_t *v, int indent, bool pretty)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        buf_str(b, "null");
        return;
    case JSON_TRUE:
        buf_str(b, "true");
        return;
    case JSON_FALSE:
        buf_str(b, "false");
        return;
    case JSON_INTEGER: {
        int64_t n = (int64_t)json_integer_value(v);
        if (n > SAFE_INTEGER || n < -SAFE_INTEGER) {
            emit_wrapper(b, "$numberLong", int64_string(n), indent, pretty);
            return;
        }
        char text[32];
        snprintf(text, sizeof text, "%" PRId64, n);
        buf_str(b, text);
        return;
    }
    case JSON_REAL: {
        double d = json_real_value(v);
        if (!isfinite(d)) {
            emit_wrapper(b, "$numberDouble",
                         json_string(isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity"),
                         indent, pretty);
            return;
        }
        char text[40];
        format_double(d, text, sizeof text);
        buf_str(b, text);
        return;
    }
    case JSON_STRING:
        buf_json_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0) {
            buf_str(b, "[]");
            return;
        }
        buf_str(b, pretty ? "[\n" : "[");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                buf_str(b, pretty ? ",\n" : ", ");
            if (pretty)
                buf_indent(b, indent + 2);
            emit(b, json_array_get(v, i), indent + 2, pretty);
        }
        if (pretty) {
            buf_str(b, "\n");
            buf_indent(b, indent);
        }
        buf_str(b, "]");
        return;
    }
    case JSON_OBJECT: {
        int64_t ms;
        if (value_type_of(v) == VALUE_DATE && value_get_date(v, &ms)) {
            char iso[32];
            json_t *inner;
            if (ejson_format_iso_date(ms, iso, sizeof iso) == 0) {
                inner = json_string(iso);
            } else {
                json_t *number = int64_string(ms);
                inner = number ? json_object() : NULL;
                if (!inner || json_object_set_new(inner, "$numberLong", number) != 0) {
                    if (!inner)
                        json_decref(number);
                    json_decref(inner);
                    inner = NULL;
                }
            }
            emit_wrapper(b, "$date", inner, indent, pretty);
            return;
        }
        emit_object(b, v, indent, pretty);
        return;
    }
    }
}

static char *format(const json_t *value, size_t *length, bool pretty)
{
    buffer b = {0};
    emit(&b, value, 0, pretty);
    if (pretty)
        buf_str(&b, "\n");
    if (b.failed || !b.data) {
        free(b.data);
        return NULL;
    }
    if (length)
        *length = b.length;
    return b.data;
}

char *ejson_format_pretty(const json_t *value, size_t *length)
{
    return format(value, length, true);
}

char *ejson_format_line(const json_t *value, size_t *length)
{
    return format(value, length, false);
}

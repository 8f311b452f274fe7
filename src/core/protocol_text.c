/*
 * protocol_text.c — JSON text as jansson's compact dumper writes it
 * (protocol_text.h).
 */
#include "protocol_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/value.h"

/* Integers beyond this are written as {"$numberLong": ...}, as ejson.c
 * does: a reader that turns numbers into doubles would lose digits. */
#define PROTOCOL_TEXT_SAFE_INTEGER INT64_C(9007199254740992) /* 2^53 */

bool protocol_text_reserve(protocol_text *text, size_t count)
{
    if (text->failed)
        return false;
    if (text->capacity - text->length > count)
        return true;
    size_t capacity = text->capacity > 0 ? text->capacity : 4096;
    while (capacity - text->length <= count) {
        if (capacity > SIZE_MAX / 2) {
            text->failed = true;
            return false;
        }
        capacity *= 2;
    }
    char *grown = realloc(text->data, capacity);
    if (grown == NULL) {
        text->failed = true;
        return false;
    }
    text->data = grown;
    text->capacity = capacity;
    return true;
}

void protocol_text_add_growing(protocol_text *text, const char *bytes, size_t count)
{
    if (!protocol_text_reserve(text, count))
        return;
    memcpy(text->data + text->length, bytes, count);
    text->length += count;
    text->data[text->length] = '\0';
}

void protocol_text_add_raw(protocol_text *text, const char *string)
{
    protocol_text_add(text, string, strlen(string));
}

void protocol_text_add_integer(protocol_text *text, int64_t number)
{
    char digits[24];
    char *start = digits + sizeof digits;
    /* Negated as unsigned, so INT64_MIN has a magnitude too. */
    uint64_t magnitude = number < 0 ? 0 - (uint64_t)number : (uint64_t)number;
    do {
        *--start = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    if (number < 0)
        *--start = '-';
    protocol_text_add(text, start, (size_t)(digits + sizeof digits - start));
}

void protocol_text_add_real(protocol_text *text, double number)
{
    char digits[40];
    int written = snprintf(digits, sizeof digits, "%.17g", number);
    if (written < 0 || (size_t)written >= sizeof digits - 2) {
        text->failed = true;
        return;
    }
    size_t length = (size_t)written;
    /* A locale whose decimal point is ',' (jansson undoes it too). */
    for (char *c = digits; *c != '\0'; c++)
        if (*c == ',')
            *c = '.';
    char *exponent = strchr(digits, 'e');
    if (exponent == NULL && strchr(digits, '.') == NULL) {
        memcpy(digits + length, ".0", 3); /* else a reader takes an integer */
        length += 2;
    }
    if (exponent != NULL) {
        char *first = exponent + 1;
        if (*first == '-')
            first++;
        char *kept = first;
        if (*kept == '+')
            kept++;
        while (*kept == '0' && kept[1] != '\0')
            kept++;
        memmove(first, kept, length - (size_t)(kept - digits) + 1);
        length -= (size_t)(kept - first);
    }
    protocol_text_add(text, digits, length);
}

void protocol_text_add_string(protocol_text *text, const char *string, size_t count)
{
    static const char hex[] = "0123456789ABCDEF";
    protocol_text_add(text, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < count; i++) {
        unsigned char c = (unsigned char)string[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        protocol_text_add(text, string + start, i - start);
        start = i + 1;
        char escape[6] = {'\\', (char)c};
        size_t escape_length = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\b': escape[1] = 'b'; break;
        case '\f': escape[1] = 'f'; break;
        case '\n': escape[1] = 'n'; break;
        case '\r': escape[1] = 'r'; break;
        case '\t': escape[1] = 't'; break;
        default:
            memcpy(escape + 1, "u00", 3);
            escape[4] = hex[c >> 4];
            escape[5] = hex[c & 0xf];
            escape_length = 6;
        }
        protocol_text_add(text, escape, escape_length);
    }
    protocol_text_add(text, string + start, count - start);
    protocol_text_add(text, "\"", 1);
}

void protocol_text_add_member_name(protocol_text *text, const char *name, bool first)
{
    if (!first)
        protocol_text_add(text, ",", 1);
    protocol_text_add_string(text, name, strlen(name));
    protocol_text_add(text, ":", 1);
}

/* {"<key>":"<string>"}, the shape of most Extended JSON wrappers. */
static void protocol_text_add_wrapped_string(protocol_text *text, const char *key,
                                             const char *string)
{
    protocol_text_add(text, "{", 1);
    protocol_text_add_member_name(text, key, true);
    protocol_text_add_string(text, string, strlen(string));
    protocol_text_add(text, "}", 1);
}

static void protocol_text_add_number_long(protocol_text *text, int64_t number)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%lld", (long long)number);
    protocol_text_add_wrapped_string(text, "$numberLong", digits);
}

static void protocol_text_add_date(protocol_text *text, int64_t milliseconds)
{
    char iso[32];
    if (ejson_format_iso_date(milliseconds, iso, sizeof iso) == 0) {
        protocol_text_add_wrapped_string(text, "$date", iso);
        return;
    }
    protocol_text_add(text, "{", 1);
    protocol_text_add_member_name(text, "$date", true);
    protocol_text_add_number_long(text, milliseconds);
    protocol_text_add(text, "}", 1);
}

void protocol_text_add_value(protocol_text *text, const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_NULL:
        protocol_text_add_raw(text, "null");
        return;
    case JSON_TRUE:
        protocol_text_add_raw(text, "true");
        return;
    case JSON_FALSE:
        protocol_text_add_raw(text, "false");
        return;
    case JSON_INTEGER: {
        int64_t number = (int64_t)json_integer_value(value);
        if (number > PROTOCOL_TEXT_SAFE_INTEGER || number < -PROTOCOL_TEXT_SAFE_INTEGER)
            protocol_text_add_number_long(text, number);
        else
            protocol_text_add_integer(text, number);
        return;
    }
    case JSON_REAL:
        protocol_text_add_real(text, json_real_value(value));
        return;
    case JSON_STRING:
        protocol_text_add_string(text, json_string_value(value), json_string_length(value));
        return;
    case JSON_ARRAY: {
        protocol_text_add(text, "[", 1);
        for (size_t index = 0; index < json_array_size(value); index++) {
            if (index > 0)
                protocol_text_add(text, ",", 1);
            protocol_text_add_value(text, json_array_get(value, index));
        }
        protocol_text_add(text, "]", 1);
        return;
    }
    case JSON_OBJECT: {
        int64_t milliseconds;
        if (value_get_date(value, &milliseconds)) {
            protocol_text_add_date(text, milliseconds);
            return;
        }
        protocol_text_add(text, "{", 1);
        const char *key;
        size_t key_length;
        json_t *member;
        bool first = true;
        json_object_keylen_foreach((json_t *)value, key, key_length, member) {
            if (!first)
                protocol_text_add(text, ",", 1);
            first = false;
            protocol_text_add_string(text, key, key_length);
            protocol_text_add(text, ":", 1);
            protocol_text_add_value(text, member);
        }
        protocol_text_add(text, "}", 1);
        return;
    }
    }
}

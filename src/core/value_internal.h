/*
 * value_internal.h — helpers shared by value.c and ejson.c only (private to
 * the realmfs_value library; not part of the public API).
 */
#ifndef REALMFS_VALUE_INTERNAL_H
#define REALMFS_VALUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* value_hex_digit's table: every _id of every object read goes through it,
 * so it is inlined rather than called. */
extern const int8_t value_hex_digit_values[256];

/* Value of one hex digit, or -1. */
static inline int value_hex_digit(char c)
{
    return value_hex_digit_values[(unsigned char)c];
}

/* Decode exactly 2*size hex digits from text into bytes; false if any is not
 * a hex digit. */
bool value_hex_decode(const char *text, uint8_t *bytes, size_t size);

/* Parse "8-4-4-4-12" hex (any case) into 16 bytes. */
bool value_uuid_parse(const char *text, size_t length, uint8_t bytes[16]);

#endif

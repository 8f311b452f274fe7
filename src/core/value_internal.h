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

/* Standard base64 with padding.  encode returns a malloc'd NUL-terminated
 * string (NULL when out of memory).  decode accepts the standard alphabet
 * with or without trailing '=' padding (no whitespace) and returns a
 * malloc'd buffer (never NULL on success, even for 0 bytes) with its size, or
 * NULL with *invalid set when the text is not base64 (false when out of
 * memory). */
char *value_base64_encode(const uint8_t *data, size_t size);
uint8_t *value_base64_decode(const char *text, size_t length, size_t *size, bool *invalid);

/* Write code_point (at most 0x10FFFF) as UTF-8 into out (4 bytes of room);
 * returns the number of bytes written. */
size_t value_encode_utf8(uint32_t code_point, char *out);

#endif

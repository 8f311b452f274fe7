/*
 * value.h — the value model shared by every part of realmfs.
 *
 * A realm object is a document: an ordered set of fields whose values are
 * the types Realm and BSON share.  In memory a document is a jansson tree in
 * "normalized" form, which every module may rely on:
 *
 *   null, bool, string       json null / true / false / string (may hold NUL,
 *                            so use json_string_length, never strlen)
 *   int (64-bit)             json integer
 *   double, finite           json real
 *   double, non-finite       {"$numberDouble": "Infinity" | "-Infinity" | "NaN"}
 *   decimal128               {"$numberDecimal": "<decimal string>"}
 *   ObjectId                 {"$oid": "<24 lowercase hex digits>"}
 *   date                     {"$date": <json integer, ms since the epoch>}
 *   UUID                     {"$uuid": "<8-4-4-4-12 lowercase hex>"}
 *   binary                   {"$binary": {"base64": "...", "subType": "<2 hex>"}}
 *   array                    json array
 *   embedded document        json object whose keys never start with '$'
 *
 * Only ejson_parse() (ejson.h) and the constructors below create the wrapper
 * objects, so a json object with a single "$..." key is always one of them.
 * Object keys keep insertion order (jansson >= 2.8 always does).
 *
 * Comparison follows Realm's query semantics: numbers compare across int,
 * double and decimal; strings compare by bytes (UTF-8 binary order); values
 * of unrelated types are not comparable (never an error).
 */
#ifndef REALMFS_VALUE_H
#define REALMFS_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum value_type {
    VALUE_NULL,
    VALUE_BOOL,
    VALUE_INT,
    VALUE_DOUBLE,
    VALUE_DECIMAL,
    VALUE_STRING,
    VALUE_OBJECT_ID,
    VALUE_DATE,
    VALUE_UUID,
    VALUE_BINARY,
    VALUE_ARRAY,
    VALUE_DOCUMENT,
} value_type;

#define VALUE_OBJECT_ID_SIZE 12
#define VALUE_UUID_SIZE 16

/* The type of a normalized value.  value must not be NULL. */
value_type value_type_of(const json_t *value);

/* The App Services / BSON name of a type: "null", "bool", "long", "double",
 * "decimal", "string", "objectId", "date", "uuid", "binData", "array",
 * "object".  Used in error messages and schema checks. */
const char *value_type_name(value_type type);

/* Constructors.  Each returns a new reference, or NULL when out of memory. */
json_t *value_new_double(double number);          /* handles inf and nan */
json_t *value_new_object_id(const uint8_t bytes[VALUE_OBJECT_ID_SIZE]);
json_t *value_new_date(int64_t milliseconds);
json_t *value_new_uuid(const uint8_t bytes[VALUE_UUID_SIZE]);
json_t *value_new_decimal(const char *text);      /* text already validated */
/* Subtype 4 with 16 bytes is a UUID and comes back as {"$uuid": ...}, so
 * that every value has a single normalized form. */
json_t *value_new_binary(const void *data, size_t size, uint8_t subtype);

/* A fresh ObjectId: 4-byte big-endian seconds, 5 random bytes per process,
 * 3-byte counter, as MongoDB generates them.  Thread-safe. */
void value_generate_object_id(uint8_t bytes[VALUE_OBJECT_ID_SIZE]);

/* Accessors.  Each returns false when value is not of the asked type. */
bool value_get_object_id(const json_t *value, uint8_t bytes[VALUE_OBJECT_ID_SIZE]);
bool value_get_date(const json_t *value, int64_t *milliseconds);
bool value_get_uuid(const json_t *value, uint8_t bytes[VALUE_UUID_SIZE]);
/* Any numeric value (int, double, decimal) as a long double. */
bool value_get_number(const json_t *value, long double *number);

/*
 * Order two values.  On success stores <0, 0 or >0 in *order and returns
 * true.  Returns false when the two are of unrelated types (a string and a
 * number, say), or when either is NaN, array or document: such pairs are
 * never less than, equal or greater than one another.  null compares equal
 * only to null.  Within a type: false < true; strings and binary by bytes
 * (memcmp, then the shorter first; binary then by subtype); ObjectIds and
 * UUIDs by bytes; dates by milliseconds.  int and double compare exactly;
 * decimals go through long double, so digits beyond its precision (about
 * 19 on x86-64) are not told apart.
 */
bool value_compare(const json_t *a, const json_t *b, int *order);

/* Deep equality: numbers across types, arrays element by element, documents
 * field by field in any order.  NaN equals NaN here (it is identity, not
 * ordering). */
bool value_equal(const json_t *a, const json_t *b);

/*
 * The value at a dotted path ("address.city") inside a document, descending
 * only through embedded documents.  Returns a borrowed reference or NULL when
 * any step is missing or is not a document (arrays and wrappers are not
 * descended), or when the path is empty or has an empty segment ("a..b").
 */
json_t *value_get_path(const json_t *document, const char *dotted_path);

/*
 * Text helpers shared by the parsers (Extended JSON, RQL).
 */

/* Length of the well-formed UTF-8 sequence at bytes (available > 0 bytes
 * readable): 1 for ASCII, 2 to 4 otherwise, 0 when it is not well-formed
 * (overlong forms, surrogates, beyond U+10FFFF, truncated), as jansson
 * checks strings. */
size_t value_utf8_sequence_length(const unsigned char *bytes, size_t available);

/* The JSON escape at text (a backslash; available bytes readable)
 * decoded: its length in the text, or 0 when jansson refuses it (an
 * unknown letter, bad hex digits, a surrogate that is not half of a pair;
 * \u0000 is allowed, as ejson_parse allows NUL in strings).  *code_point
 * is the character it stands for. */
size_t value_decode_json_escape(const char *text, size_t available, long *code_point);

/* Write code_point (at most 0x10FFFF) as UTF-8 into out (4 bytes of room);
 * returns the number of bytes written. */
size_t value_encode_utf8(uint32_t code_point, char *out);

/* Standard base64 with padding.  encode returns a malloc'd NUL-terminated
 * string (NULL when out of memory).  decode accepts the standard alphabet
 * with or without trailing '=' padding (no whitespace) and returns a
 * malloc'd buffer (never NULL on success, even for 0 bytes) with its size, or
 * NULL with *invalid set when the text is not base64 (false when out of
 * memory). */
char *value_base64_encode(const uint8_t *data, size_t size);
uint8_t *value_base64_decode(const char *text, size_t length, size_t *size, bool *invalid);

#endif

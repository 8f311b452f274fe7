/*
 * ejson_internal.h — what ejson.c shares with ejson_fields.c, which reads
 * the same Extended JSON without building every field (private to the
 * realmfs_value library; not part of the public API).
 */
#ifndef REALMFS_EJSON_INTERNAL_H
#define REALMFS_EJSON_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "realmfs/value.h"

/* The value of an Extended JSON wrapper whose one member is a string, such
 * as {"$oid": "..."}, decoded but not yet a json value: a reader that only
 * checks a value then allocates nothing. */
typedef struct ejson_scalar {
    value_type type; /* VALUE_OBJECT_ID, DATE, INT, DOUBLE, DECIMAL or UUID */
    union {
        int64_t integer;                 /* INT; DATE in ms since the epoch */
        double number;                   /* DOUBLE, possibly inf or nan */
        const char *decimal;             /* DECIMAL: the member's text, borrowed */
        uint8_t bytes[VALUE_UUID_SIZE];  /* OBJECT_ID (first 12) and UUID */
    };
} ejson_scalar;

/*
 * Decode {"<key>": "<text>"} (key of key_length bytes; text NUL-terminated,
 * holding no NUL) exactly as ejson_parse normalizes it, for the keys $oid,
 * $date, $numberLong, $numberInt, $numberDouble, $numberDecimal and $uuid.
 * false when key is another one or text is malformed for it; ejson_parse
 * then decides (and names the error).
 */
bool ejson_decode_string_wrapper(const char *key, size_t key_length, const char *text,
                                 ejson_scalar *scalar);

/* The normalized value of a decoded wrapper: a new reference, or NULL when
 * out of memory.  A DECIMAL's text must still be valid. */
json_t *ejson_scalar_to_json(const ejson_scalar *scalar);

#endif

/*
 * protocol_text.h — JSON text written straight into a growing buffer, byte
 * for byte as jansson's json_dumps(..., JSON_COMPACT) writes the same
 * values (private to the realmfs_protocol library).
 *
 * protocol_serialize builds a jansson tree and dumps it; the writer of
 * server-built downloads (protocol_serialize_download) writes the same
 * frame without the tree, which saves an allocation per value and most of
 * the time of a bootstrap.  Both must give the same bytes, so everything
 * here follows jansson's dumper: "," and ":" without spaces, reals as
 * "%.17g" with ".0" added when there is neither '.' nor exponent and no '+'
 * or leading zero in an exponent, strings escaped with \", \\, \b, \f,
 * \n, \r, \t and \u00XX (upper-case hex) for the other control characters,
 * everything else (non-ASCII UTF-8 included) as is.
 *
 * Strings must be valid UTF-8 (as every string jansson built is): jansson
 * would refuse the others, this writer does not look.  A failed allocation
 * sets failed and makes every later call do nothing, so a writer checks
 * once at the end.
 */
#ifndef REALMFS_PROTOCOL_TEXT_H
#define REALMFS_PROTOCOL_TEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct protocol_text {
    char *data; /* NUL-terminated once anything was added */
    size_t length;
    size_t capacity;
    bool failed;
} protocol_text;

/* Room for count more bytes and a NUL, so that a writer that knows its
 * size grows the buffer once.  false when memory ran out (failed set). */
bool protocol_text_reserve(protocol_text *text, size_t count);
/* Bytes as they are.  Inline, as every piece of every frame comes here:
 * the call costs more than the copy when there is room. */
void protocol_text_add_growing(protocol_text *text, const char *bytes, size_t count);
static inline void protocol_text_add(protocol_text *text, const char *bytes, size_t count)
{
    if (text->failed || text->capacity - text->length <= count) {
        protocol_text_add_growing(text, bytes, count);
        return;
    }
    memcpy(text->data + text->length, bytes, count);
    text->length += count;
    text->data[text->length] = '\0';
}
/* A NUL-terminated literal or name, as it is. */
void protocol_text_add_raw(protocol_text *text, const char *string);
void protocol_text_add_integer(protocol_text *text, int64_t number);
/* number must be finite (JSON has no other). */
void protocol_text_add_real(protocol_text *text, double number);
/* A JSON string of count bytes (which may hold NUL). */
void protocol_text_add_string(protocol_text *text, const char *string, size_t count);
/* "name": with the separator before it unless first. */
void protocol_text_add_member_name(protocol_text *text, const char *name, bool first);

/*
 * A normalized value (value.h) in Relaxed Extended JSON, as changesets
 * carry ids and values (changeset_to_json): the normalized form except
 * dates ({"$date": "<ISO-8601>"}, or {"$date": {"$numberLong": "<ms>"}}
 * outside years 1970..9999) and ints beyond 2^53 ({"$numberLong": "<n>"}),
 * as ejson_format_line writes them.
 */
void protocol_text_add_value(protocol_text *text, const json_t *value);

#endif

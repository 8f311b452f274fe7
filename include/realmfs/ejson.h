/*
 * ejson.h — MongoDB Extended JSON, the text form of realm objects.
 *
 * Reading accepts both Relaxed and Canonical Extended JSON v2 (what
 * mongoexport writes), and produces the normalized in-memory form described
 * in value.h.  Writing always produces Relaxed Extended JSON:
 *
 *   int        plain number, or {"$numberLong": "..."} when |n| > 2^53 (a
 *              double, as jq and JavaScript use, would lose precision)
 *   double     shortest text that reads back to the same double, always
 *              with a '.' or an exponent (1.0, 0.1, 1e+300); non-finite as
 *              {"$numberDouble": "Infinity"}
 *   date       {"$date": "2024-05-01T12:00:00Z"} (".mmm" only when the
 *              milliseconds are not zero) for years 1970..9999, otherwise
 *              {"$date": {"$numberLong": "<ms>"}}
 *   others     {"$oid"}, {"$numberDecimal"}, {"$uuid"}, {"$binary": {...}}
 *
 * The pretty form is canonical: two-space indent, one field or element per
 * line, "key": value, empty containers as {} and [], non-ASCII characters as
 * UTF-8 (not \u escapes), and a trailing newline.  Formatting the result of
 * parsing a canonical text gives back the same bytes.
 */
#ifndef REALMFS_EJSON_H
#define REALMFS_EJSON_H

#include <jansson.h>
#include <stddef.h>

typedef struct ejson_error {
    int line;          /* 1-based; 0 when the error has no position */
    int column;        /* 1-based; 0 when the error has no position */
    char message[256]; /* what is wrong, naming the field path if any */
} ejson_error;

/*
 * Parse one JSON object (the whole text; surrounding whitespace allowed)
 * and normalize its Extended JSON.  Rejected, with a message: syntax errors
 * (with line and column), a top level that is not an object, duplicate keys,
 * keys that start with '$' other than the known wrappers, NUL in keys,
 * malformed wrappers ({"$oid": "xyz"}), unsupported BSON types ($timestamp,
 * $regularExpression, $minKey, ...), integers beyond 64 bits.
 * Only jansson's syntax-level errors have a position (its column is that of
 * the last character read, e.g. the '}' in `"b": }`); errors found while
 * normalizing have line and column 0 and name the field instead:
 *   field "owner.tags[2]": $oid must be 24 hexadecimal digits
 * $binary base64 may omit its '=' padding; it is stored re-encoded, padded.
 * Returns a new reference, or NULL with *error filled in.
 *
 * The text is read straight into the normalized tree (the reader of
 * ejson_parse_fields, below); where that reader gives up (any error, and
 * the rare text it leaves to jansson) ejson_parse_reference decides, so
 * results and errors are always ejson_parse_reference's.
 */
json_t *ejson_parse(const char *text, size_t length, ejson_error *error);

/* ejson_parse by the longer way, jansson's parser and then normalization
 * of its tree: the reference the quicker readers are tested against, and
 * what they fall back on. */
json_t *ejson_parse_reference(const char *text, size_t length, ejson_error *error);

/*
 * Reading only some fields.  A query reads a few top-level fields of each
 * object; parsing just those is several times faster than ejson_parse.
 * An ejson_field_set names them; it is only read while parsing, so one set
 * may serve many threads at once.
 */
typedef struct ejson_field_set ejson_field_set;

/* An empty set, or NULL when out of memory. */
ejson_field_set *ejson_field_set_new(void);

/* Add the top-level field of a field path: "address.city" adds "address",
 * "owner_id" adds "owner_id".  Adding a field twice changes nothing.
 * Returns 0, or -ENOMEM (the set is then unchanged). */
int ejson_field_set_add_path(ejson_field_set *fields, const char *path);

/* Accepts NULL. */
void ejson_field_set_free(ejson_field_set *fields);

/*
 * The same as ejson_parse(text, length, error) followed by removing every
 * top-level field that is not in fields: the fields kept are normalized
 * exactly as ejson_parse normalizes them, whole subtrees included, in the
 * order of the text.  Text that ejson_parse rejects is rejected with the
 * same *error, whichever field holds the problem.
 *
 * The other fields are checked but never built.  Some rare text is parsed
 * whole by ejson_parse_reference instead, with the same result, only slower: keys
 * with escapes, nesting deeper than 64, more than 256 keys in the objects
 * around any one value, very long numbers or wrapper strings.
 * Returns a new reference, or NULL with *error filled in.
 */
json_t *ejson_parse_fields(const char *text, size_t length, const ejson_field_set *fields,
                           ejson_error *error);

/*
 * As ejson_parse_fields, for canonical text (what ejson_format_pretty or
 * ejson_format_line wrote, as every realmfs store holds): the fields not in
 * the set are skipped by their structure alone, not checked, which saves
 * most of the time of a query over stored objects.  The selected fields
 * are read exactly as ejson_parse_fields reads them.  On other text the
 * result is unspecified (but memory-safe): a malformed field that is not
 * selected may go unnoticed.
 */
json_t *ejson_parse_canonical_fields(const char *text, size_t length,
                                     const ejson_field_set *fields, ejson_error *error);

/*
 * Normalize a value that jansson parsed on its own (for instance one line of
 * a mongoexport file read with json_loadb).  Takes no ownership of raw.
 * raw may be any value, so a top-level wrapper ({"$oid": ...}) yields that
 * scalar: check value_type_of(result) == VALUE_DOCUMENT when a document is
 * required.  Keys containing NUL (json_object_setn) are rejected.
 * Returns a new reference or NULL with *error filled in (line/column 0).
 */
json_t *ejson_normalize(const json_t *raw, ejson_error *error);

/* The canonical pretty text of a normalized value, NUL-terminated, with its
 * length (excluding the NUL) in *length.  malloc'd; NULL when out of memory. */
char *ejson_format_pretty(const json_t *value, size_t *length);

/* The same value on one line with no trailing newline ({"a": 1, "b": [1, 2]}),
 * for JSON-lines files.  malloc'd; NULL when out of memory. */
char *ejson_format_line(const json_t *value, size_t *length);

/* Date conversions used by the formatter and the query language.  parse
 * accepts "YYYY-MM-DDTHH:MM:SS[.fff...]" followed by "Z" or "+HH:MM"/"-HHMM";
 * returns 0 or -EINVAL.  format writes "YYYY-MM-DDTHH:MM:SS[.mmm]Z" and
 * needs 32 bytes; returns -ERANGE outside years 1970..9999, -ENOSPC when
 * size is too small.  Digits of a fraction beyond milliseconds are dropped
 * (truncated, not rounded). */
int ejson_parse_iso_date(const char *text, int64_t *milliseconds);
int ejson_format_iso_date(int64_t milliseconds, char *out, size_t size);

#endif

/*
 * projected_parse.h — a prototype, measured by query_bench, of parsing only
 * the fields a subscription reads.
 *
 * ejson_parse builds the whole document (with jansson, then copies it into
 * the normalized form), yet a subscription reads one or two fields of it.
 * A projection is the set of top-level fields a query reads (from
 * rql_visit_fields); projected_parse walks the object's text, skipping
 * every other field's value without building anything, and builds only
 * the projected fields, straight into their normalized form, in a document
 * that holds just those.  rql_matches gives the same answer on it as on
 * the whole document, because a query reads nothing else: a field absent
 * from the text is absent here too, and a dotted path keeps its whole
 * top-level field.
 *
 * What it trusts: the text comes from the store, where only text that
 * ejson_parse accepted is ever committed.  It checks the structure it walks
 * and everything it builds, but not the fields it skips.  What it builds
 * follows ejson_parse's rules by using the same code for anything beyond
 * plain strings, small integers, true, false, null, arrays and documents:
 * Extended JSON wrappers go through ejson_normalize (ISO dates through
 * ejson_parse_iso_date), other numbers through jansson.  Whenever the text
 * is not plainly what it expects (a key or string with an escape, a
 * duplicate key in what it builds, any syntax it does not follow, nesting
 * deeper than 64), it falls back to ejson_parse of the whole text, so its
 * result and its errors are then exactly ejson_parse's.
 *
 * This is a benchmark prototype of a proposed ejson.h function; it is not
 * used by realmfs itself.
 */
#ifndef REALMFS_BENCH_PROJECTED_PARSE_H
#define REALMFS_BENCH_PROJECTED_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/ejson.h"
#include "realmfs/rql.h"

/* More distinct top-level fields than this and the projection covers the
 * whole document (a query reading that much gains little from it). */
#define PROJECTION_MAX_FIELDS 16

typedef struct projection_field {
    char *name;        /* malloc'd, NUL-terminated */
    size_t length;
} projection_field;

typedef struct projection {
    bool whole_document;   /* no projection: parse everything */
    size_t count;
    projection_field fields[PROJECTION_MAX_FIELDS];
} projection;

/* The top-level fields query reads.  0, or -ENOMEM (then *out is left
 * empty and needs no projection_free). */
int projection_from_query(const rql_query *query, projection *out);
void projection_free(projection *p);

/* The document holding the projected top-level fields of the Extended
 * JSON object in text, normalized; or all of it when p->whole_document.
 * A new reference, or NULL with *error filled in. */
json_t *projected_parse(const char *text, size_t length, const projection *p,
                        ejson_error *error);

#endif

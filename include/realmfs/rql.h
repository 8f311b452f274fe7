/*
 * rql.h — the Realm Query Language subset that Flexible Sync accepts as a
 * subscription predicate (docs/queries.md has the grammar and semantics).
 *
 * A query is parsed once into a tree whose literals are already normalized
 * values (value.h), then matched against any number of documents: matching
 * allocates nothing and never fails, so one parsed query may be matched from
 * many threads at once.  Everything a subscription may not use (SORT,
 * aggregates such as @count, link traversal, list-to-list comparisons,
 * unbound parameters) is refused by rql_parse, never silently ignored.
 */
#ifndef REALMFS_RQL_H
#define REALMFS_RQL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/ejson.h"

typedef struct rql_query rql_query;

typedef struct rql_error {
    size_t position;   /* 0-based byte offset in the query text */
    char message[256]; /* "byte 14: SORT is not supported in subscriptions" */
} rql_error;

/*
 * Parse a NUL-terminated query.
 *
 * arguments: NULL, or a json array of normalized values bound to $0, $1, ...
 *   An argument may be a scalar or an array of scalars (a list, usable after
 *   IN or BETWEEN).  The values are copied.
 * schema: NULL, or the App Services schema of the collection ({"bsonType":
 *   "object", "properties": {...}}).  When given, every path must name
 *   fields in it, dotted paths may only go through embedded objects
 *   (bsonType "object"), ANY/ALL/NONE and "x IN field" need a list
 *   (bsonType "array") field, and a list field is never compared to another
 *   list field.  When NULL, any path is accepted and a dotted path is looked
 *   up through embedded documents.
 *
 * Returns the query, or NULL with *error filled in (error may not be NULL).
 */
rql_query *rql_parse(const char *text, const json_t *arguments, const json_t *schema,
                     rql_error *error);

/* Whether a normalized document (a json object) satisfies the query.  Type
 * mismatches make a comparison false; this never fails and never allocates. */
bool rql_matches(const rql_query *query, const json_t *document);

/*
 * Call visit once for every distinct field path the query reads, in order of
 * first appearance, as written ("owner_id", "address.city"); the top-level
 * field is the part before the first dot.  Stops at the first non-zero
 * return of visit and returns it; returns 0 when every path was visited.
 */
int rql_visit_fields(const rql_query *query, int (*visit)(const char *path, void *context),
                     void *context);

/*
 * Add to fields the top-level field of every path the query reads.  A query
 * reads nothing else, so it matches the document ejson_parse_fields gives
 * with these fields exactly when it matches the whole document, and reading
 * only them is much cheaper.  Several queries may add to one set.
 * Returns 0, or -ENOMEM (the set then holds some of the fields).
 */
int rql_add_fields(const rql_query *query, ejson_field_set *fields);

/*
 * Whether the query only matches documents whose top-level field holds
 * one of some given values: the query is, or ANDs at its top level
 * (through nested ANDs), a case-sensitive "field == literal", "literal ==
 * field" or "field IN {...}" on a field that is not a list.  Flexible Sync requires
 * this of queries on a collection that has the app's indexed queryable
 * field.  An OR, a NOT or a quantifier above the comparison does not
 * count: it would let documents with other values through.
 */
bool rql_requires_field_equality(const rql_query *query, const char *field);

/*
 * The canonical text of the query: keywords in upper case, parameters
 * replaced by their values, strings in double quotes, dates as
 * T<seconds>:<nanoseconds>, parentheses only where needed.  Parsing the
 * result gives a query that describes to the same text and matches the same
 * documents, except that a decimal argument reads back as a double and a
 * binary argument as subtype 0.  malloc'd; NULL when out of memory.
 */
char *rql_describe(const rql_query *query);

/* Free a query (NULL is allowed). */
void rql_free(rql_query *query);

#endif

/*
 * filter.h — App Services rule expressions: a role's "apply_when" and its
 * "document_filters" read/write, as found in rules.json and
 * default_rule.json of an exported app.
 *
 * An expression is true, false, or a MongoDB query document restricted to:
 *
 *   document level   {"path": <value>} (implicit $eq), {"path": {<ops>}},
 *                    {"%%user...": <value> | {<ops>}}, $and, $or, $nor;
 *                    several keys are ANDed; {} is always true
 *   field operators  $eq $ne $gt $gte $lt $lte $in $nin $exists $not $all
 *   values           Extended JSON literals (normalized as value.h says),
 *                    arrays and documents of values, the expansions
 *                    %%user.id, %%user.type, %%user.data[.<path>],
 *                    %%user.custom_data[.<path>], %%true, %%false, and
 *                    {"%stringToOid": <value>}, {"%oidToString": <value>}
 *
 * Everything else (%function, %%root, %%prev, %%request, $where, $regex,
 * $elemMatch, %and, ...) is refused by filter_parse, so a rule is never
 * silently evaluated differently from App Services.
 *
 * Matching follows MongoDB: a dotted path descends through embedded
 * documents and through arrays of them; an array field matches when the
 * array itself or any element satisfies the operator; a missing field
 * equals null, so {"f": null} and {"f": {"$exists": false}} match it and
 * {"f": {"$ne": 1}} does too; values of unrelated types never compare
 * (value_compare).  $ne, $nin, $not and "$exists": false are the exact
 * complements of $eq, $in, the operators inside $not and "$exists": true.
 *
 * An expansion with no value (no user, no such field in data or
 * custom_data, %stringToOid of a string that is not 24 hex digits) is
 * "missing": it equals nothing, not even null or a missing field, and
 * orders against nothing; as the list of $in, $nin or $all it is the empty
 * list.  An expansion used as that list which holds a single non-array
 * value stands for the list of that one value.
 */
#ifndef REALMFS_FILTER_H
#define REALMFS_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A parsed expression; immutable, so it may be shared between threads. */
typedef struct filter filter;

/* The requesting user, as the %%user expansions see it.  Any member may be
 * NULL: the expansions that read it are then missing. */
typedef struct filter_user {
    const char *id;            /* UTF-8 */
    const char *type;          /* "normal", "server", "edge", ... */
    const json_t *data;        /* auth provider metadata, normalized */
    const json_t *custom_data; /* the custom user data document, normalized */
} filter_user;

/*
 * Parse an expression as it appears in a rules file (plain JSON, whose
 * Extended JSON literals such as {"$oid": ...} filter_parse normalizes).
 * Takes no ownership of expression.  Returns a new filter, or NULL with a
 * NUL-terminated message in message (when message_size > 0):
 * "<source_name>.<key path>: <what is wrong>", for instance
 * "rules.json: roles[0].document_filters.read.owner: unsupported expansion
 * %%root".  source_name may be NULL; it then is left out.
 * Expressions nested deeper than 100 levels are refused.
 */
filter *filter_parse(const json_t *expression, const char *source_name,
                     char *message, size_t message_size);

/*
 * Whether document satisfies the filter for user.  document is a normalized
 * document, or NULL for apply_when (every document field is then missing);
 * user may be NULL (every %%user expansion is then missing).  Returns false
 * when memory runs out during evaluation.
 */
bool filter_matches(const filter *filter, const json_t *document, const filter_user *user);

/*
 * Call visit once for each distinct document field path the filter reads,
 * as written ("owner_id", "address.city"), in order of first appearance;
 * expansions used as keys are not document fields.  Stops at, and returns,
 * the first non-zero value visit returns; returns 0 otherwise.
 */
int filter_visit_fields(const filter *filter, int (*visit)(const char *path, void *context),
                        void *context);

/* Free a filter; NULL is allowed. */
void filter_free(filter *filter);

#endif

/*
 * sync_view.h — what one session of realmfs-server sees: its accepted
 * subscription set, parsed once, and the tests every document passes
 * before it reaches a client.
 *
 * A document reaches a client when
 *   1. it passes its collection's schema once the fields the schema does
 *      not name are stripped (sync_view_prepare_document; the same for
 *      every client, so the server does it once per document), and
 *   2. the session's view contains it: at least one subscription of its
 *      collection matches (sync_view_contains; per session).
 * The read side of the permission rules is to plug in at step 2.
 *
 * A view is immutable once built and reference-counted, because a
 * bootstrap in progress still needs the set it replaces.
 */
#ifndef REALMFS_SYNC_VIEW_H
#define REALMFS_SYNC_VIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/app_config.h"
#include "realmfs/protocol.h"

typedef struct sync_view sync_view;

/*
 * A subscription set in its stored form, {"Task": [{"name": "mine",
 * "query": "owner_id == \"u1\""}]}, from a query message.  A new
 * reference, NULL when out of memory.
 */
json_t *sync_view_subscriptions_json(const protocol_query_body *query);

/*
 * Build the view of a subscription set in its stored form, enforcing what
 * Flexible Sync requires of every subscription: its collection is in the
 * app (unless the app is in development mode), its query parses against
 * the collection's schema, every field the query reads is queryable, and
 * on a collection whose schema has the app's indexed queryable field the
 * query tests that field with == or IN at its top level.  0, -ENOMEM, or
 * -EINVAL with a message "<collection>: <subscription>: <reason>".
 * app must outlive the view.
 */
int sync_view_new(const app_config *app, const json_t *subscriptions, sync_view **out,
                  char *message, size_t message_size);

/* Another reference; returns view. */
sync_view *sync_view_ref(sync_view *view);
/* Drop a reference (NULL is allowed). */
void sync_view_unref(sync_view *view);

/* The collections that have subscriptions, in byte order. */
size_t sync_view_collection_count(const sync_view *view);
const char *sync_view_collection_at(const sync_view *view, size_t index);
bool sync_view_has_collection(const sync_view *view, const char *collection);

/*
 * A copy of a stored document as clients may receive it: fields its
 * collection's schema does not name are removed, then the copy is
 * validated (which may turn ints into doubles, as the schema asks).  A
 * collection without a schema keeps the document as it is.  0 with
 * *prepared a new reference, or NULL there when the document violates the
 * schema (it then reaches no client); -ENOMEM.
 */
int sync_view_prepare_document(const app_config *app, const char *collection,
                               const json_t *document, json_t **prepared);

/* The same, changing document itself rather than a copy: for a caller
 * that owns it (a document it just parsed) and drops it afterwards, as it
 * may be half stripped when it violates the schema. */
int sync_view_prepare_own_document(const app_config *app, const char *collection,
                                   json_t *document, json_t **prepared);

/* Whether the view contains a document that sync_view_prepare_document
 * gave (NULL: never). */
bool sync_view_contains(const sync_view *view, const char *collection, const json_t *prepared);

#endif

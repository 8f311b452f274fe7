/*
 * sync_view.h — what one session of realmfs-server sees: its accepted
 * subscription set, parsed once, its user and that user's roles, and the
 * tests every document passes before it reaches a client.
 *
 * A document reaches a client when
 *   1. it passes its collection's schema once the fields the schema does
 *      not name are stripped (sync_view_prepare_document; the same for
 *      every client, so the server does it once per document), and
 *   2. the session's view contains it: at least one subscription of its
 *      collection matches, and the role of the session's user for that
 *      collection may read it (sync_view_examine; per session), and
 *   3. only with the fields that role may read (sync_view_readable_document).
 *
 * Roles are chosen when the view is built, per subscribed collection, as
 * App Services chooses them at the start of a sync session
 * (rules_select_role).  A collection no role applies to may be
 * subscribed to: in App Services a subscription needs no knowledge of
 * permissions, which apply to the data its query matches (what reaches a
 * device is the query AND the permissions; its documentation names no
 * refusal of a subscription but bad queries and fields that are not
 * queryable).  The view then holds nothing of the collection, and the
 * client may write nothing to it.
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
#include "realmfs/rules.h"
#include "sync_user.h"

typedef struct sync_view sync_view;

/*
 * A subscription set in its stored form, {"Task": [{"name": "mine",
 * "query": "owner_id == \"u1\""}]}, from a query message.  A new
 * reference, NULL when out of memory.
 */
json_t *sync_view_subscriptions_json(const protocol_query_body *query);

/*
 * Build the view of a subscription set in its stored form for user,
 * enforcing what Flexible Sync requires of every subscription: its
 * collection is in the app (unless the app is in development mode), its
 * query parses against the collection's schema, every field the query
 * reads is queryable, and on a collection whose schema has the app's
 * indexed queryable field the query tests that field with == or IN at its
 * top level; and no collection name starts with '$' (which the engine's
 * stored form of a query uses for itself).  0, -ENOMEM, or -EINVAL with a
 * message "<collection>: <subscription>: <reason>".  app and rules must outlive the view, which
 * takes a reference on user.
 *
 * rules and user NULL make a view without permissions, which shows every
 * document its subscriptions match, writable, with all its fields: what a
 * client may hold from before the server had rules, which the server
 * compares with the view it now gives that client.
 */
int sync_view_new(const app_config *app, const rules *rules, sync_user *user,
                  const json_t *subscriptions, sync_view **out, char *message,
                  size_t message_size);

/* The subscription set the view was built from (borrowed), to build it
 * again for another user context. */
const json_t *sync_view_subscriptions(const sync_view *view);

/* The view's user; NULL for a view without permissions. */
sync_user *sync_view_user(const sync_view *view);

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

/* What the view's role grants on one document (sync_view_examine). */
typedef struct sync_view_object {
    bool visible;                  /* the session receives it */
    bool writable;                 /* the session may change it */
    bool all_fields_readable;      /* else sync_view_readable_document strips
                                      some */
    const rules_role *role;        /* NULL: no role, or no permissions */
    rules_document_access access;  /* what role grants on the document */
} sync_view_object;

/*
 * What view shows of a document that sync_view_prepare_document gave
 * (NULL: it shows nothing).  The subscriptions are tested first, so a
 * document they do not match costs no rule.
 */
void sync_view_examine(const sync_view *view, const char *collection, const json_t *prepared,
                       sync_view_object *object);

/* Whether the view contains a document that sync_view_prepare_document
 * gave (NULL: never): sync_view_examine's visible. */
bool sync_view_contains(const sync_view *view, const char *collection, const json_t *prepared);

/*
 * The document a session receives of a visible one (object from
 * sync_view_examine on it): prepared itself, with a new reference, when
 * every field is readable, else a copy without the fields the role may not
 * read.  0 or -ENOMEM.
 */
int sync_view_readable_document(const sync_view *view, const sync_view_object *object,
                                const json_t *prepared, json_t **readable);

/*
 * The role that applies to the view's user for collection, subscribed or
 * not; NULL when none does.  Views without permissions have no roles: see
 * sync_view_has_permissions.
 */
const rules_role *sync_view_role(const sync_view *view, const char *collection);
bool sync_view_has_permissions(const sync_view *view);

/*
 * What the view's permissions depend on, to tell whether a client served
 * with one view must be sent what changed when it is served with another:
 * {"user": sync_user_json, "roles": {"<collection>": {"name": <role name or
 * null>, "rules": <the rules.json the role comes from, or the default rule,
 * or null>}}} for every subscribed collection.  null for a view without
 * permissions.  A new reference; NULL when out of memory.
 */
json_t *sync_view_access_json(const sync_view *view);

#endif

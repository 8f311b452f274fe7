/*
 * sync_write_check.h — which parts of an upload a session may make: the
 * write side of roles and rules, and the server's schema, checked before
 * anything is integrated.
 *
 * Each object a changeset touches is judged on two documents: before,
 * the object as the store holds it (after the upload's earlier
 * changesets, as far as they were allowed), and after, the document the
 * changeset's instructions on it would leave, worked out with the
 * object's merge state (object_state_apply) exactly as integration will.
 * The object's instructions are refused, all of them, when
 *
 *   - no role of the session's user applies to the collection;
 *   - the object exists and the role may not write it (document filter
 *     "write", then "write"), or the changeset deletes it and the role
 *     may not delete;
 *   - the changeset creates it and the role may not insert it (write on
 *     the new document, and "insert");
 *   - the role could not write the document the change would leave (the
 *     write filter refuses the result: a user giving away an object);
 *   - a field that changes is one the role may not write;
 *   - neither document is in the session's view (its subscriptions and
 *     read permission): a client writes only what it was given, and what
 *     it creates must be something it may see;
 *   - the app's indexed queryable field changes;
 *   - the document the change would leave does not fit the server's
 *     schema (sync_schema_admit_document; in Development Mode the schema
 *     grows instead).
 *
 * The instructions on an object that exists neither before nor after (a
 * delete of what is already gone, an edit of a deleted object, as
 * clients make when they did not know) change nothing anyone sees: they
 * are dropped without a compensating write.  Integrated, their clocks
 * would stay in the merge state, where one of a forged, later clock
 * could hide, or fill, an object somebody creates later.
 *
 * The rest of the changeset is integrated as usual; a changeset left
 * empty is integrated too, so its client version is acknowledged.
 * Changesets the server integrated before (client version not above the
 * file's last integrated one) are passed on unchecked: the store skips
 * them.
 */
#ifndef REALMFS_SYNC_WRITE_CHECK_H
#define REALMFS_SYNC_WRITE_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realmfs/app_config.h"
#include "realmfs/changeset.h"
#include "realmfs/sync_store.h"
#include "sync_schema.h"
#include "sync_view.h"

/* One object whose instructions were refused: what the compensating
 * write tells the client. */
typedef struct sync_write_refusal {
    char *collection;
    json_t *id;
    char *reason;
    json_t *server_document; /* the object before the changeset, as the
                                session may read it; NULL when it does not
                                exist or the session may not read it */
    uint64_t client_version; /* of the changeset */
} sync_write_refusal;

/* What an upload may integrate.  Clear with sync_write_check_clear. */
typedef struct sync_write_check {
    changeset *allowed;  /* one per uploaded changeset, in order: the
                            original's instructions on allowed objects */
    bool *owned;         /* allowed[i] is a copy this check owns (else it
                            shares the upload's instructions) */
    size_t count;
    sync_write_refusal *refusals; /* in upload order */
    size_t refusal_count;
    size_t refusal_capacity;
    bool schema_extended;         /* Development Mode learned something */
} sync_write_check;

/*
 * Judge every object of changesets (those after integrated_through) for
 * the session whose view is view.  0 with *check filled; -ENOMEM; or the
 * negative errno of the store or of sync_schema_admit_document (-EIO:
 * a schema extension could not be saved) with a message.
 */
int sync_write_check_run(const app_config *app, sync_schema *schema, sync_store *store,
                         const sync_view *view, const changeset *changesets, size_t count,
                         uint64_t integrated_through, sync_write_check *check, char *message,
                         size_t message_size);

/* Free what the check owns; safe on a zeroed one. */
void sync_write_check_clear(sync_write_check *check);

#endif

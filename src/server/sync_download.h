/*
 * sync_download.h — the instructions of download changesets.
 *
 * Clients mirror the server: per object in its view, a client keeps the
 * server's document as of its download progress.  So a download carries
 * the effect of a change on the recipient's view rather than the
 * instructions another client uploaded:
 *
 *   the object was and is in view  a diff, when applying it reproduces the
 *                                  new document's field order exactly;
 *                                  else a replacement
 *   it entered the view            create, then one set per field
 *   it left the view               delete ("gone from your view": deleted,
 *                                  or no longer matching)
 *
 * A replacement is delete, create, then one set per field: the client
 * drops its copy and takes the server's.  Bootstraps and catch-ups send
 * replacements and deletes only.
 *
 * Every function appends to a changeset and returns the number of objects
 * it affected (0 or 1), or -ENOMEM, or -EINVAL with a message (a document
 * that cannot be written as instructions); after a failure the changeset
 * may hold part of the object's instructions, so discard it.
 */
#ifndef REALMFS_SYNC_DOWNLOAD_H
#define REALMFS_SYNC_DOWNLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/changeset.h"

/*
 * The effect of one object's change on a view.  before and after are the
 * documents as the view shows them (NULL: not in view).
 */
int sync_download_append_effect(const char *collection, const json_t *id, const json_t *before,
                                const json_t *after, changeset *download, char *message,
                                size_t message_size);

/* The object is now document (NULL: it is not in view, so a delete). */
int sync_download_append_replacement(const char *collection, const json_t *id,
                                     const json_t *document, changeset *download, char *message,
                                     size_t message_size);

/*
 * Whether a diff from before to after, applied to a copy of before, gives
 * after with its field order: at every level where both hold a document,
 * after keeps the relative order of the fields it shares with before and
 * puts its new fields after all of them.
 */
bool sync_download_diff_keeps_order(const json_t *before, const json_t *after);

#endif

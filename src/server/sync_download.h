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
#include "realmfs/protocol.h"

/*
 * The effect of one object's change on a view, appended to download: the
 * diff, or a replacement when the diff would not keep after's field order.
 * before and after are the documents as the view shows them (NULL: not in
 * view).  1 when instructions were added, 0 when nothing changed in the
 * view, or a negative errno with a message.
 */
int sync_download_append_effect(const char *collection, const json_t *id, const json_t *before,
                                const json_t *after, changeset *download, char *message,
                                size_t message_size);

/*
 * Whether a diff from before to after, applied to a copy of before, gives
 * after with its field order: at every level where both hold a document,
 * after keeps the relative order of the fields it shares with before and
 * puts its new fields after all of them.
 */
bool sync_download_diff_keeps_order(const json_t *before, const json_t *after);

/*
 * "<collection>/<id as one-line Extended JSON>": one text per object (no
 * collection name holds '/'), to find objects in a map.  malloc'd; NULL
 * when out of memory.
 */
char *sync_download_object_key(const char *collection, const json_t *id);

/*
 * The access entries of one download message (docs/protocol.md,
 * "Access"), gathered while its changesets are made.  A client applies
 * them after all the changesets, so what counts is the last word on each
 * object: a later note replaces an earlier one, and an object that left
 * the view has none.  Zero-initialize; costs nothing until the first
 * note.
 */
typedef struct sync_download_access {
    json_t *entries; /* object key -> [collection, id, writable]; NULL: none */
} sync_download_access;

/* Say whether the client may write the object.  0 or -ENOMEM. */
int sync_download_access_note(sync_download_access *access, const char *collection,
                              const json_t *id, bool writable);
/* Whether a note on the object is pending. */
bool sync_download_access_has(const sync_download_access *access, const char *collection,
                              const json_t *id);
/* The object left the view: no note on it.  0 or -ENOMEM. */
int sync_download_access_forget(sync_download_access *access, const char *collection,
                                const json_t *id);
/* Append the notes to download, in the order they were first made.  0 or
 * -ENOMEM. */
int sync_download_access_add_to(const sync_download_access *access,
                                protocol_download_body *download);
void sync_download_access_clear(sync_download_access *access);

#endif

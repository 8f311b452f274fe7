/*
 * sync_snapshot_stream.h — downloads made from a snapshot of the store, one
 * frame at a time, so that a large one never sits in memory whole:
 *
 *   bootstrap  a new subscription set was accepted: every object of the
 *              collections of the old and new sets, in id order; those the
 *              new set shows are sent as replacements, those only the old
 *              one showed as deletes
 *   catch-up   a bind with a download progress behind the server: every
 *              object the history touched since, in the session's view,
 *              sent as a replacement, or as a delete when it is no longer
 *              in view (deleted, or left it)
 *
 * Every frame is a "download" holding one changeset of origin 0, client
 * version 0 and the stream's creation time, at the snapshot's server
 * version; all but the last have last_in_batch false; progress_estimate
 * is the share of the objects examined so far.  Objects come with the
 * fields the new view lets the session read, and with an access entry
 * (writable false) when it may not write them.
 *
 * A bootstrap from a view to another of the same subscriptions and
 * another user context is how a session is sent what a change of its
 * permissions changed.
 */
#ifndef REALMFS_SYNC_SNAPSHOT_STREAM_H
#define REALMFS_SYNC_SNAPSHOT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realmfs/app_config.h"
#include "realmfs/sync_store.h"
#include "sync_view.h"

typedef struct sync_snapshot_stream sync_snapshot_stream;

/* What every frame of a stream says besides its changeset. */
typedef struct sync_stream_header {
    uint64_t session;
    uint64_t query_version;
    uint64_t last_integrated_client_version;
} sync_stream_header;

/*
 * A bootstrap from old_view (NULL when the session had none) to new_view;
 * the stream takes references on both.  batch_bytes is the approximate
 * document text per frame.  0, or a negative errno with a message.  app
 * and store must outlive the stream.
 */
int sync_snapshot_stream_bootstrap(const app_config *app, sync_store *store, sync_view *old_view,
                                   sync_view *new_view, const sync_stream_header *header,
                                   size_t batch_bytes, int64_t now_ms, sync_snapshot_stream **out,
                                   char *message, size_t message_size);

/*
 * A catch-up for a session with view, from after_version.  -ESTALE when
 * the history no longer reaches back there (the client must reset).  0, or
 * a negative errno with a message.
 */
int sync_snapshot_stream_catch_up(const app_config *app, sync_store *store, sync_view *view,
                                  uint64_t after_version, const sync_stream_header *header,
                                  size_t batch_bytes, int64_t now_ms, sync_snapshot_stream **out,
                                  char *message, size_t message_size);

/*
 * The next frame, malloc'd, in *frame (its length in *length); *finished
 * says it was the last one.  *objects counts the objects it carries.
 * 0, or a negative errno with a message (a store failure, a frame that
 * cannot be written); after a failure the stream can only be freed.
 */
int sync_snapshot_stream_next(sync_snapshot_stream *stream, char **frame, size_t *length,
                              bool *finished, size_t *objects, char *message,
                              size_t message_size);

/* NULL is allowed; ends the snapshot. */
void sync_snapshot_stream_free(sync_snapshot_stream *stream);

#endif

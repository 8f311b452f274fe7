/*
 * sync_status.h — what a synced mount's sync thread tells the rest of the
 * mount: the connection's state, who it is logged in as, marks for
 * `realmfs wait`, and how far the bootstrap of a new subscription set is.
 *
 * Ownership and threads: mount.c creates one sync_status per synced mount
 * (none without --server: fs_context.sync_status is NULL) and frees it after
 * the sync thread has stopped.  The sync thread (sync_client.c) is the only
 * writer of the connection fields; any thread may read a snapshot or
 * request a mark.  Every function takes the status's own mutex for a short
 * copy and never blocks on the network, so a reader of .realmfs/status
 * never waits for the sync thread.
 *
 * What is durable (file identity, server version, pending uploads,
 * subscriptions and the accepted or refused query version with the
 * server's message) is in the store: store_get_sync_progress.  This struct
 * holds only what lives as long as the daemon.
 */
#ifndef REALMFS_SYNC_STATUS_H
#define REALMFS_SYNC_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sync_connection_state {
    SYNC_STATE_DISABLED,   /* not syncing (not started yet, or stopped for good after an
                              error the client cannot fix by itself: see last_error) */
    SYNC_STATE_CONNECTING, /* opening the connection or binding the session */
    SYNC_STATE_CONNECTED,  /* bound: uploads and downloads flow */
    SYNC_STATE_OFFLINE,    /* the connection is lost; retrying at retry_at_ms */
    SYNC_STATE_ERROR,      /* the server refused us (login, permissions, client reset
                              needed); last_error says why; retrying only if it said so */
} sync_connection_state;

#define SYNC_STATUS_TEXT_MAX 512

typedef struct sync_status_snapshot {
    sync_connection_state state;
    char last_error[SYNC_STATUS_TEXT_MAX]; /* "" when none since the last connection */
    char server_url[SYNC_STATUS_TEXT_MAX];
    char app_id[SYNC_STATUS_TEXT_MAX];
    char user[SYNC_STATUS_TEXT_MAX];       /* email, "API key <id>" or "anonymous" */
    int64_t retry_at_ms;                   /* offline/error: next attempt (ms since the
                                              epoch), 0 when none is planned */
    int64_t connected_at_ms;               /* connected: since when; else 0 */
    /* Marks: requested counts requests (sync_status_request_mark); answered is
     * the latest request the server answered.  Everything downloaded up to the
     * moment of request R is applied once answered >= R. */
    uint64_t mark_requested;
    uint64_t mark_answered;
    /* The query version sent last on this connection (0: none yet), and the
     * bootstrap progress (0.0 to 1.0) of it; 1.0 once applied or refused. */
    uint64_t sent_query_version;
    double bootstrap_progress;
} sync_status_snapshot;

typedef struct sync_status sync_status;

/* A status in state DISABLED with the given server, app and user texts
 * (each copied, truncated to SYNC_STATUS_TEXT_MAX - 1).  0 or -ENOMEM. */
int sync_status_new(const char *server_url, const char *app_id, const char *user,
                    sync_status **out);
/* Accepts NULL.  No other thread may use the status any more. */
void sync_status_free(sync_status *status);

/* Copy the current state into *snapshot.  Any thread. */
void sync_status_get(sync_status *status, sync_status_snapshot *snapshot);

/* The name shown in .realmfs/status: "disabled", "connecting", "connected",
 * "offline", "error". */
const char *sync_status_state_name(sync_connection_state state);

/*
 * Ask the sync thread to make the server confirm that everything it holds
 * has been downloaded; returns the request number to compare with
 * snapshot.mark_answered.  Requests made while offline are sent once bound.
 * Any thread; does not wait.
 */
uint64_t sync_status_request_mark(sync_status *status);

/* Tell the sync thread that something changed locally (an object, a
 * subscription): it uploads or sends the new query at once.  Any thread;
 * does not wait.  Does nothing before the sync thread has started. */
void sync_status_wake(sync_status *status);

/* ---- for the sync thread only ---- */

/* The function sync_status_wake and sync_status_request_mark call, or NULL
 * to stop waking (before the sync thread exits). */
void sync_status_set_waker(sync_status *status, void (*wake)(void *context), void *context);

/* Change the connection state.  error (may be NULL) replaces last_error;
 * connecting to CONNECTED clears it.  retry_at_ms as in the snapshot. */
void sync_status_set_state(sync_status *status, sync_connection_state state, const char *error,
                           int64_t retry_at_ms);
/* A query version was sent (progress 0) or progressed. */
void sync_status_set_bootstrap(sync_status *status, uint64_t query_version, double progress);
/* The server answered mark request. */
void sync_status_set_mark_answered(sync_status *status, uint64_t request);

#endif

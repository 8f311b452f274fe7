/*
 * sync_engine.h — the protocol logic of realmfs-server, independent of the
 * transport: connections and their sessions, binds and file identities,
 * subscription sets and their bootstraps, upload integration, fan-out of
 * integrated changes to every session whose view they touch, marks,
 * pings and errors (docs/protocol.md), and the app's roles and rules on
 * all of it: what each session receives (sync_view.h), which uploaded
 * writes it may make (sync_write_check.h, compensating writes for the
 * others), and what a change of a user's custom data changes.
 *
 * The transport (server.c, libwebsockets) owns sockets and calls in here;
 * the engine owns everything about sessions and never touches a socket.
 * So the engine is testable by feeding it frames and reading the frames it
 * answers with.
 *
 * Threads: one thread (the server's event loop) makes every call; nothing
 * here locks.
 *
 * Flow of one connection:
 *   sync_engine_connect         after the upgrade authenticated the user
 *   sync_engine_receive         for each text (or binary) frame received
 *   sync_engine_next_frame      while the socket is writable, until NULL
 *   sync_engine_disconnect      when the socket closed, for any reason
 * The engine calls callbacks.wants_to_write(transport_context) whenever it
 * has frames queued for a connection (its own replies, or another
 * client's change fanned out to it).  When sync_engine_next_frame has
 * returned NULL and sync_engine_close_code says so, the transport closes
 * the connection with that WebSocket close code.
 */
#ifndef REALMFS_SYNC_ENGINE_H
#define REALMFS_SYNC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realmfs/app_config.h"
#include "realmfs/auth.h"
#include "realmfs/rules.h"
#include "realmfs/sync_store.h"
#include "sync_schema.h"

typedef struct sync_engine sync_engine;
typedef struct sync_connection sync_connection;

typedef struct sync_engine_callbacks {
    void (*wants_to_write)(void *transport_context);
} sync_engine_callbacks;

/* Zero members take the defaults. */
typedef struct sync_engine_options {
    size_t bootstrap_batch_bytes;  /* approximate frame size of a bootstrap
                                      download; default 1 MiB */
    int64_t idle_timeout_ms;       /* default PROTOCOL_IDLE_TIMEOUT_SECONDS */
    size_t max_queued_bytes;       /* frames a connection may have waiting to
                                      be sent; past it the client is dropped
                                      with going_away, to catch up when it
                                      binds again; default 64 MiB */
} sync_engine_options;

/* Counters for GET /metrics; totals since start unless said otherwise. */
typedef struct sync_engine_metrics {
    uint64_t connections;          /* open now */
    uint64_t sessions;             /* bound now */
    uint64_t changesets_in;        /* integrated from uploads */
    uint64_t changesets_skipped;   /* re-uploads acknowledged and skipped */
    uint64_t objects_out;          /* objects sent in downloads */
    uint64_t bootstraps;           /* completed */
    double bootstrap_seconds;      /* total time from query to last batch */
    uint64_t protocol_errors;      /* connections closed for bad input */
    uint64_t history_changesets;   /* in the store now */
    uint64_t server_version;       /* the store's latest */
} sync_engine_metrics;

/* -ENOMEM, or -EINVAL with a message.  app, its rules (rules_load), its
 * schemas (sync_schema_open on app, which Development Mode extends) and
 * store must outlive the engine. */
int sync_engine_new(app_config *app, const rules *rules, sync_schema *schema, sync_store *store,
                    const sync_engine_options *options,
                    const sync_engine_callbacks *callbacks, sync_engine **out,
                    char *message, size_t message_size);
/* Every connection must have been disconnected. */
void sync_engine_free(sync_engine *engine);

/* A new connection for an authenticated user (copied), whose custom user
 * data is read now (a connection whose custom data cannot be read ends
 * with internal_error).  NULL when out of memory. */
sync_connection *sync_engine_connect(sync_engine *engine, const auth_user *user,
                                     void *transport_context, int64_t now_ms);

/*
 * One frame from the client.  Returns 0 when the connection goes on, or
 * the connection-level protocol_error_code that ends it; the error message
 * is then queued, and sync_engine_close_code gives the close code once it
 * has been sent.  Session-level problems are answered on their session
 * and return 0.  A frame longer than PROTOCOL_MAX_MESSAGE_BYTES need not
 * be buffered: pass its length (or any larger one) and the engine answers
 * message_too_large without reading text.  After a connection-level error
 * (and after sync_engine_shutdown) frames are ignored and the code is
 * returned again.
 */
int sync_engine_receive(sync_engine *engine, sync_connection *connection,
                        const char *text, size_t length, bool binary, int64_t now_ms);

/* The next frame to send (malloc'd, the caller frees it, its length in
 * *length), or NULL when there is nothing to send now.  Bootstrap batches
 * are produced here, one frame at a time, so a bootstrap never sits in
 * memory whole. */
char *sync_engine_next_frame(sync_engine *engine, sync_connection *connection,
                             size_t *length);

/* 0 while the connection stays open; else the WebSocket close code (1001,
 * 1002, 1008, 1009, 1011) to close with once next_frame returned NULL. */
int sync_engine_close_code(const sync_connection *connection);

/* The socket is gone: forget the connection and its sessions. */
void sync_engine_disconnect(sync_engine *engine, sync_connection *connection);

/* Call about once a second: closes idle connections (error 107). */
void sync_engine_tick(sync_engine *engine, int64_t now_ms);

/* SIGTERM: stop accepting frames, queue going_away (106) on every
 * connection.  In-flight integrations are already committed, since each
 * receive integrates before it returns. */
void sync_engine_shutdown(sync_engine *engine);

void sync_engine_get_metrics(sync_engine *engine, sync_engine_metrics *metrics);

#endif

/*
 * sync_transport.h — client WebSocket connections to realmfs-server, on
 * libwebsockets: what a mount's sync thread and the benchmark clients use
 * to exchange protocol frames (docs/protocol.md, "The connection").
 *
 * A sync_transport is one libwebsockets context with its event loop; it
 * holds any number of connections.  It knows frames, not messages: the
 * caller reads and writes them with protocol.h.
 *
 * Threads: one thread creates the transport, opens, sends on and closes
 * its connections and runs sync_transport_service; every handler runs in
 * that thread, from inside sync_transport_service.  The only call another
 * thread may make is sync_transport_wake.
 */
#ifndef REALMFS_SYNC_TRANSPORT_H
#define REALMFS_SYNC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sync_transport sync_transport;
typedef struct sync_transport_connection sync_transport_connection;

/* What happens on a connection.  Any handler may be NULL.  After closed,
 * the connection is freed: forget the pointer. */
typedef struct sync_transport_handlers {
    /* The upgrade succeeded with the protocol's subprotocol. */
    void (*connected)(sync_transport_connection *connection, void *context);
    /* One whole text frame (binary frames are refused as the protocol
     * says).  text is valid during the call and NUL-terminated. */
    void (*received)(sync_transport_connection *connection, const char *text, size_t length,
                     void *context);
    /*
     * The connection is over.  close_code is the WebSocket close code the
     * server sent (1000-4999), or 0 when the connection failed or broke
     * without one; http_status is the HTTP status of a refused upgrade
     * (401, 404, ...) or 0.  reason says what happened, for people.
     */
    void (*closed)(sync_transport_connection *connection, int close_code, int http_status,
                   const char *reason, void *context);
} sync_transport_handlers;

typedef struct sync_transport_options {
    const char *ca_file;           /* trust these CAs for wss:// (NULL: the system's) */
    bool allow_self_signed;        /* wss:// to a server with a self-signed certificate */
    /* Called in the service thread after sync_transport_wake (may be NULL). */
    void (*woken)(void *context);
    void *woken_context;
} sync_transport_options;

/* -ENOMEM or -EIO with a message.  options may be NULL. */
int sync_transport_new(const sync_transport_options *options, sync_transport **out,
                       char *message, size_t message_size);
/* Closes every connection (without calling handlers) and frees. */
void sync_transport_free(sync_transport *transport);

/*
 * Open a connection to url (ws://HOST:PORT or wss://HOST:PORT, with an
 * optional path prefix) for app_id, sending authorization as the
 * Authorization header (auth.h forms; may be NULL).  Connecting goes on
 * in sync_transport_service; the handlers say how it ends.  -EINVAL with a
 * message for a bad url, -ENOMEM, -EIO when libwebsockets refuses.
 */
int sync_transport_connect(sync_transport *transport, const char *url, const char *app_id,
                           const char *authorization, const sync_transport_handlers *handlers,
                           void *context, sync_transport_connection **out, char *message,
                           size_t message_size);

/* Queue one text frame (copied); frames go out in order.  -ENOMEM, or
 * -ENOTCONN once the connection is closing. */
int sync_transport_send(sync_transport_connection *connection, const char *text, size_t length);

/* Bytes queued and not yet written to the socket. */
size_t sync_transport_queued_bytes(const sync_transport_connection *connection);

/* Close with code 1000 once the queued frames are out; closed follows. */
void sync_transport_close(sync_transport_connection *connection);

/* Run the event loop for at most timeout_ms (0: only what is ready).
 * 0, or -EIO when the loop failed. */
int sync_transport_service(sync_transport *transport, int timeout_ms);

/* From any thread: make sync_transport_service return soon, after calling
 * options.woken in the service thread. */
void sync_transport_wake(sync_transport *transport);

#endif

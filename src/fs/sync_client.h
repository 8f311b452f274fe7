/*
 * sync_client.h — a synced mount's sync thread: one realmfs-server
 * connection per mount, which uploads the store's outbox, sends the
 * subscriptions, applies downloads and keeps sync_status.h current
 * (docs/sync.md for users, docs/protocol.md for the messages).
 *
 * Threads: sync_client_check_login runs in the calling thread.
 * sync_client_start starts the sync thread, which alone uses the transport
 * and the connection; the store, the error log and the sync_status are
 * shared with the FUSE thread (each is thread-safe).  sync_client_stop is
 * called by the thread that started it.
 *
 * Credentials: the Authorization header value is copied into the client's
 * memory and wiped when it is freed; nothing here writes it anywhere.  So
 * is the session token the server hands out after a login (auth.h), with
 * which the client reconnects.
 */
#ifndef REALMFS_SYNC_CLIENT_H
#define REALMFS_SYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "realmfs/auth.h"
#include "realmfs/error_log.h"
#include "realmfs/store.h"
#include "sync_status.h"

typedef struct sync_client_options {
    const char *server_url;    /* ws://HOST:PORT or wss://HOST:PORT[/prefix] */
    const char *app_id;
    const char *authorization; /* the Authorization header value (auth.h forms) */
    const char *session_token; /* to connect with first; NULL or "": log in with authorization */
    const char *ca_file;       /* wss:// trusts these CAs; NULL: the system's */
    const char *mountpoint;    /* where the objects show: the error log names files there */
} sync_client_options;

/* What a login check found. */
typedef enum sync_login_result {
    SYNC_LOGIN_ACCEPTED,    /* the server took the credentials for this app */
    SYNC_LOGIN_REFUSED,     /* the server answered, and refused (401, 404, 400, ...) */
    SYNC_LOGIN_UNREACHABLE, /* no answer: no server there, or it did not answer in time */
} sync_login_result;

/*
 * Open one connection with these options and close it again, waiting at
 * most timeout_ms: whether the server accepts the login for the app.
 * session_token receives the token of the login, for
 * sync_client_options.session_token, so that the mount logs in once (and
 * an anonymous mount is one user); "" when none came.  The caller wipes
 * it.  message says why the login failed ("the server refused the login
 * (HTTP 401): ...").  Returns SYNC_LOGIN_UNREACHABLE too when the
 * transport cannot even be set up (with the reason in message).
 */
sync_login_result sync_client_check_login(const sync_client_options *options, int timeout_ms,
                                          char session_token[AUTH_SESSION_TOKEN_SIZE],
                                          char *message, size_t message_size);

/*
 * The "Basic" Authorization header value for a local-userpass login, in
 * *out (malloc'd; the caller wipes it with explicit_bzero and frees it).
 * 0, -EINVAL for an empty email or password or an email holding ':',
 * -ENOMEM.
 */
int sync_client_basic_authorization(const char *email, const char *password, char **out);

/* Called by the sync thread after a download, or a write the server
 * refused, changed visible objects (store.h), once the store has
 * committed them. */
typedef void (*sync_client_changed_fn)(const store_download_change *changes, size_t count,
                                       void *context);

/* Called by the sync thread for each collection whose schema the server's
 * schemas may have changed (one that appeared, went or was replaced),
 * once the store has committed them. */
typedef void (*sync_client_schema_changed_fn)(const char *collection, void *context);

/* Who hears what the sync thread changed; each function may be NULL. */
typedef struct sync_client_listener {
    sync_client_changed_fn changed;
    sync_client_schema_changed_fn schema_changed;
    void *context;
} sync_client_listener;

typedef struct sync_client sync_client;

/*
 * Start the sync thread for a store opened with store_options.synced.
 * status is updated as the connection goes; listener (copied) hears of
 * what the thread changes.  Everything passed must outlive the client.
 * The thread connects at once, and again with jittered exponential backoff
 * whenever the connection is lost.  0, or -errno with a message.
 */
int sync_client_start(const sync_client_options *options, store *store, error_log *errors,
                      sync_status *status, const sync_client_listener *listener,
                      sync_client **out, char *message, size_t message_size);

/*
 * Stop the thread and free the client (accepts NULL).  While connected,
 * the thread first gets up to drain_ms to upload the outbox and have it
 * acknowledged.  *left (may be NULL) receives how many local changesets
 * are still waiting for the server: the store keeps them for the next
 * mount.
 */
void sync_client_stop(sync_client *client, int drain_ms, uint64_t *left);

#endif

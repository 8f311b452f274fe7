/*
 * server.h — the transport of realmfs-server: one libwebsockets context
 * with one vhost listening on one address, serving on the same port
 *
 *   GET /health        200 {"status":"ok","server_version":N}
 *   GET /metrics       Prometheus text format 0.0.4
 *   /api/client/v2.0/app/<APP_ID>/realm-sync
 *                      the WebSocket endpoint (subprotocol realmfs.sync.v1),
 *                      authenticated in the upgrade (docs/protocol.md)
 *
 * and handing every frame to the sync engine (sync_engine.h), which holds
 * all protocol logic.  docs/server.md is the operator's reference.
 */
#ifndef REALMFS_SERVER_H
#define REALMFS_SERVER_H

#include "realmfs/app_config.h"
#include "realmfs/auth.h"
#include "realmfs/rules.h"
#include "realmfs/sync_store.h"
#include "sync_schema.h"

typedef struct server_options {
    const char *listen_host;   /* an IP address; "" for every interface */
    int listen_port;           /* 0: any free port (the log says which) */
    const char *tls_cert_file; /* both or neither: TLS (wss://) */
    const char *tls_key_file;
} server_options;

/*
 * Serve until SIGTERM or SIGINT, then send going_away (106) on every
 * connection, close them with 1001 and return 0, within a few seconds.
 * Returns 1 when the server cannot start (address in use, unreadable
 * certificate...) or fails, after logging why.  app, its rules and
 * schemas (which extend app in Development Mode), store and auth are the
 * caller's and must stay open until this returns.  Installs handlers for
 * SIGTERM and SIGINT and ignores SIGPIPE.
 */
int server_run(const server_options *options, app_config *app, const rules *rules,
               sync_schema *schema, sync_store *store, auth *auth);

#endif

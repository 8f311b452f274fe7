/*
 * server.c — see server.h.
 *
 * Who owns what.  Everything runs on the thread that calls server_run:
 * libwebsockets calls server_callback from lws_service, and the timer
 * (server_tick) runs from there too.  The sync engine is not thread-safe
 * and is only ever called from these two places.  The signal handler does
 * nothing but set a flag and wake lws_service (lws_cancel_service only
 * writes to an eventfd), and the loop in server_run acts on the flag.
 *
 * Every WebSocket connection has a server_connection (libwebsockets'
 * per-session data): the engine's connection and the message being
 * received.  The engine calls server_wants_to_write with the connection's
 * struct lws; every frame goes out from the writable callback, one frame
 * per callback, so that one fast talker cannot starve the others.
 *
 * Authentication runs in the upgrade request (LWS_CALLBACK_HTTP_CONFIRM_
 * UPGRADE), where an HTTP status can still be answered.  libwebsockets
 * gives the WebSocket a fresh per-session data after that, so the user
 * (and the login message, if any) travels to LWS_CALLBACK_ESTABLISHED as
 * the wsi's opaque user data.  Password and API key hashing takes tens of
 * milliseconds per login on this thread, during which other connections
 * wait: so a login with a credential gets a session token (auth.h) in a
 * login message, the connection's first frame, and reconnects with the
 * token cost a lookup instead; see docs/server.md.
 */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "realmfs/protocol.h"
#include "sync_engine.h"

#define SERVER_TICK_MICROSECONDS LWS_US_PER_SEC
#define SERVER_TRIM_INTERVAL_MS (60 * 60 * 1000)
/* How long shutdown waits for the going_away messages to go out. */
#define SERVER_SHUTDOWN_GRACE_MS 4000
#define SERVER_MAX_HEADER_BYTES (AUTH_HEADER_MAX + 4096)
/* Room for the headers of an HTTP response, ahead of its body. */
#define SERVER_RESPONSE_HEADER_BYTES 1024
/* One send() at most; lws buffers the rest of a frame and sends it as the
 * socket drains. */
#define SERVER_SEND_CHUNK_BYTES (1024 * 1024)
/* A receive buffer larger than this is freed once its message is handed
 * over, so that idle connections stay small. */
#define SERVER_KEPT_BUFFER_BYTES (64 * 1024)
#define MS_PER_DAY (24.0 * 60 * 60 * 1000)

typedef struct server {
    const app_config *app;
    sync_store *store;
    auth *auth;
    sync_engine *engine;
    struct lws_context *context;
    char *websocket_path;
    lws_sorted_usec_list_t tick_timer;
    int64_t session_lifetime_ms;
    int64_t next_trim_ms;
    size_t connection_count;
    bool shutting_down;
    int64_t shutdown_deadline_ms;
    bool finished;
} server;

/*
 * What an upgrade request authenticated, for LWS_CALLBACK_ESTABLISHED:
 * the user, and the login message to send first (a secret; NULL when the
 * connection opened with a session token that is not due for renewal).
 */
typedef struct server_login {
    auth_user user;
    char *login_frame;
    size_t login_frame_length;
} server_login;

typedef struct server_connection {
    sync_connection *engine_connection; /* NULL until established */
    char peer[64];
    char *login_frame; /* not sent yet; as in server_login */
    size_t login_frame_length;
    char *message; /* the message being received */
    size_t message_length;
    size_t message_capacity;
    bool message_in_progress; /* fragments of it have arrived */
    bool message_binary;
    bool message_handed_over; /* too large: already handed over */
    bool input_ended;         /* the engine ended the connection */
} server_connection;

static volatile sig_atomic_t stop_requested;
static struct lws_context *volatile signal_context;

static int64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void handle_stop_signal(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
    if (signal_context)
        lws_cancel_service(signal_context);
}

static const char *peer_name(struct lws *wsi, char *buffer, size_t size)
{
    const char *name = lws_get_peer_simple(wsi, buffer, size);
    return name ? name : "unknown peer";
}

/* ---- HTTP responses ---------------------------------------------------- */

static const char *reason_phrase(unsigned int status)
{
    switch (status) {
    case HTTP_STATUS_OK:
        return "OK";
    case HTTP_STATUS_BAD_REQUEST:
        return "Bad Request";
    case HTTP_STATUS_UNAUTHORIZED:
        return "Unauthorized";
    case HTTP_STATUS_NOT_FOUND:
        return "Not Found";
    case HTTP_STATUS_SERVICE_UNAVAILABLE:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static int add_header(struct lws *wsi, enum lws_token_indexes name, const char *value,
                      unsigned char **position, unsigned char *end)
{
    return lws_add_http_header_by_token(wsi, name, (const unsigned char *)value, (int)strlen(value),
                                        position, end);
}

/*
 * Status line, headers and body in one write, as lws_return_http_status
 * does (HTTP/1.1 only: the vhost offers no h2).  The status line is ours:
 * in an upgrade request lws does not know the HTTP version yet and would
 * answer "HTTP/1.0", which WebSocket clients refuse.  0, or -1 when the
 * connection must be dropped.
 */
static int write_http_response(struct lws *wsi, unsigned int status, const char *content_type,
                               const char *body, size_t body_length, bool ask_credentials)
{
    size_t size = LWS_PRE + SERVER_RESPONSE_HEADER_BYTES + body_length;
    unsigned char *buffer = malloc(size);
    if (!buffer)
        return -1;
    unsigned char *start = buffer + LWS_PRE, *end = buffer + size;
    int result = -1;
    char content_length[24];
    snprintf(content_length, sizeof content_length, "%zu", body_length);
    int line_length = snprintf((char *)start, SERVER_RESPONSE_HEADER_BYTES, "HTTP/1.1 %u %s\r\n",
                               status, reason_phrase(status));
    unsigned char *position = start + line_length;
    if (add_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, content_type, &position, end) ||
        add_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, content_length, &position, end) ||
        (ask_credentials &&
         add_header(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                    "Basic realm=\"realmfs\", Bearer realm=\"realmfs\"", &position, end)) ||
        lws_finalize_http_header(wsi, &position, end))
        goto done;
    memcpy(position, body, body_length);
    position += body_length;
    int length = (int)(position - start);
    if (lws_write(wsi, start, (size_t)length, LWS_WRITE_HTTP) == length)
        result = 0;
done:
    free(buffer);
    return result;
}

static int write_http_text(struct lws *wsi, unsigned int status, const char *text)
{
    return write_http_response(wsi, status, "text/plain; charset=utf-8", text, strlen(text),
                               status == HTTP_STATUS_UNAUTHORIZED);
}

static int answer_health(server *server, struct lws *wsi)
{
    sync_engine_metrics metrics;
    sync_engine_get_metrics(server->engine, &metrics);
    char body[96];
    int length = snprintf(body, sizeof body, "{\"status\":\"ok\",\"server_version\":%" PRIu64 "}\n",
                          metrics.server_version);
    return write_http_response(wsi, HTTP_STATUS_OK, "application/json", body, (size_t)length,
                               false);
}

/* The resident set size from /proc/self/statm; 0 when unknown. */
static uint64_t resident_memory_bytes(void)
{
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm)
        return 0;
    unsigned long long total_pages, resident_pages;
    int fields = fscanf(statm, "%llu %llu", &total_pages, &resident_pages);
    fclose(statm);
    long page_size = sysconf(_SC_PAGESIZE);
    if (fields != 2 || page_size <= 0)
        return 0;
    return (uint64_t)resident_pages * (uint64_t)page_size;
}

static void write_metric(FILE *out, const char *name, const char *type, const char *help,
                         const char *value)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name, value);
}

static void write_count_metric(FILE *out, const char *name, const char *type, const char *help,
                               uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    write_metric(out, name, type, help, text);
}

static int answer_metrics(server *server, struct lws *wsi)
{
    sync_engine_metrics metrics;
    sync_engine_get_metrics(server->engine, &metrics);
    char *body = NULL;
    size_t body_length = 0;
    FILE *out = open_memstream(&body, &body_length);
    if (!out)
        return write_http_text(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory\n");
    write_count_metric(out, "realmfs_connections", "gauge", "Open WebSocket connections.",
                       metrics.connections);
    write_count_metric(out, "realmfs_sessions", "gauge", "Bound sessions.", metrics.sessions);
    write_count_metric(out, "realmfs_changesets_integrated_total", "counter",
                       "Uploaded changesets integrated.", metrics.changesets_in);
    write_count_metric(out, "realmfs_changesets_skipped_total", "counter",
                       "Re-uploaded changesets acknowledged and skipped.",
                       metrics.changesets_skipped);
    write_count_metric(out, "realmfs_objects_sent_total", "counter", "Objects sent in downloads.",
                       metrics.objects_out);
    write_count_metric(out, "realmfs_bootstraps_total", "counter", "Bootstraps completed.",
                       metrics.bootstraps);
    char seconds[32];
    snprintf(seconds, sizeof seconds, "%.6f", metrics.bootstrap_seconds);
    write_metric(out, "realmfs_bootstrap_seconds_total", "counter",
                 "Time from query to last bootstrap batch, summed over bootstraps.", seconds);
    write_count_metric(out, "realmfs_protocol_errors_total", "counter",
                       "Connections closed for bad input.", metrics.protocol_errors);
    write_count_metric(out, "realmfs_history_changesets", "gauge", "Changesets in the history.",
                       metrics.history_changesets);
    write_count_metric(out, "realmfs_server_version", "gauge", "The latest server version.",
                       metrics.server_version);
    write_count_metric(out, "process_resident_memory_bytes", "gauge",
                       "Resident memory size in bytes.", resident_memory_bytes());
    if (fclose(out) != 0) {
        free(body);
        return write_http_text(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    int result = write_http_response(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4", body,
                                     body_length, false);
    free(body);
    return result;
}

/* An HTTP request that is not a WebSocket upgrade. */
static int answer_http(server *server, struct lws *wsi, const char *path)
{
    bool is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    int result;
    if (is_get && strcmp(path, "/health") == 0)
        result = answer_health(server, wsi);
    else if (is_get && strcmp(path, "/metrics") == 0)
        result = answer_metrics(server, wsi);
    else
        result = write_http_text(wsi, HTTP_STATUS_NOT_FOUND, "not found\n");
    if (result != 0 || lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* ---- The upgrade: endpoint, version, credentials ----------------------- */

static bool offers_subprotocol(struct lws *wsi)
{
    char offered[256];
    if (lws_hdr_copy(wsi, offered, sizeof offered, WSI_TOKEN_PROTOCOL) <= 0)
        return false;
    char *saved;
    for (char *name = strtok_r(offered, ", \t", &saved); name;
         name = strtok_r(NULL, ", \t", &saved)) {
        if (strcmp(name, PROTOCOL_SUBPROTOCOL) == 0)
            return true;
    }
    return false;
}

/* Wipes a login message, which holds a session token, and frees it. */
static void free_login_frame(char *frame, size_t length)
{
    if (!frame)
        return;
    explicit_bzero(frame, length);
    free(frame);
}

static void server_login_free(server_login *login)
{
    auth_user_clear(&login->user);
    free_login_frame(login->login_frame, login->login_frame_length);
    free(login);
}

static int refuse_provider(app_auth_provider provider, char *reason, size_t reason_size)
{
    snprintf(reason, reason_size, "the %s provider is not enabled in auth/providers.json",
             auth_provider_name(provider));
    return -EACCES;
}

/*
 * A new session token for login->user, who logged in with provider, as
 * the login message login->login_frame.  0, or a negative errno with the
 * reason.
 */
static int issue_session_token(server *server, app_auth_provider provider, server_login *login,
                               char *reason, size_t reason_size)
{
    char token[AUTH_SESSION_TOKEN_SIZE];
    auth_session session;
    int result = auth_create_session(server->auth, login->user.id, provider,
                                     server->session_lifetime_ms, token, &session);
    if (result < 0) {
        snprintf(reason, reason_size, "cannot store a session token: %s", auth_last_error());
        return result;
    }
    protocol_message message;
    protocol_message_init(&message, PROTOCOL_MESSAGE_LOGIN, 0);
    message.body.login.user_id = login->user.id;
    message.body.login.token = token;
    message.body.login.expires = (uint64_t)session.expires_ms;
    protocol_error error;
    login->login_frame = protocol_serialize(&message, &login->login_frame_length, &error);
    explicit_bzero(token, sizeof token);
    if (!login->login_frame) {
        snprintf(reason, reason_size, "cannot write the login message: %s", error.message);
        return -ENOMEM;
    }
    return 0;
}

/*
 * A session token logs in without a hash; it is renewed (a new token in
 * a login message, the old one staying valid until it expires) once half
 * its lifetime has passed, so that a client that keeps reconnecting never
 * sees it expire.
 */
static int authenticate_session_token(server *server, const char *token, server_login *login,
                                      char *reason, size_t reason_size)
{
    auth_session session;
    int result = auth_verify_session_token(server->auth, token, &login->user, &session);
    if (result < 0) {
        snprintf(reason, reason_size, "%s", auth_last_error());
        return result;
    }
    if (!app_config_provider_enabled(server->app, session.provider))
        return refuse_provider(session.provider, reason, reason_size);
    if (now_ms() - session.created_ms < server->session_lifetime_ms / 2)
        return 0;
    return issue_session_token(server, session.provider, login, reason, reason_size);
}

/* A login with a credential: always a new session token. */
static int authenticate_credentials(server *server, const auth_credentials *credentials,
                                    server_login *login, char *reason, size_t reason_size)
{
    if (!app_config_provider_enabled(server->app, credentials->provider))
        return refuse_provider(credentials->provider, reason, reason_size);
    int result = auth_authenticate(server->auth, credentials, &login->user);
    if (result < 0) {
        snprintf(reason, reason_size, "%s", auth_last_error());
        return result;
    }
    return issue_session_token(server, credentials->provider, login, reason, reason_size);
}

/*
 * The user the Authorization header names, and the login message to
 * send.  0; -EACCES with the reason (never a secret) for a missing,
 * malformed, wrong or refused credential or token; another negative errno
 * when authentication itself failed.
 */
static int authenticate(server *server, struct lws *wsi, server_login *login, char *reason,
                        size_t reason_size)
{
    int length = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (length <= 0) {
        snprintf(reason, reason_size, "no Authorization header");
        return -EACCES;
    }
    if (length > AUTH_HEADER_MAX) {
        snprintf(reason, reason_size, "Authorization header longer than %d bytes", AUTH_HEADER_MAX);
        return -EACCES;
    }
    char header[AUTH_HEADER_MAX + 1];
    if (lws_hdr_copy(wsi, header, sizeof header, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
        snprintf(reason, reason_size, "unreadable Authorization header");
        return -EACCES;
    }
    auth_credentials credentials;
    int result = auth_parse_authorization_header(header, &credentials);
    explicit_bzero(header, sizeof header);
    if (result < 0) {
        snprintf(reason, reason_size, "%s", auth_last_error());
        return -EACCES;
    }
    if (credentials.session_token[0] != '\0')
        result = authenticate_session_token(server, credentials.session_token, login, reason,
                                            reason_size);
    else
        result = authenticate_credentials(server, &credentials, login, reason, reason_size);
    auth_credentials_clear(&credentials);
    return result;
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 lets the upgrade proceed, 1 means
 * an HTTP status was answered instead, -1 drops the connection. */
static int confirm_upgrade(server *server, struct lws *wsi, const char *upgrade)
{
    char peer[64], path[256];
    peer_name(wsi, peer, sizeof peer);
    if (strcasecmp(upgrade, "websocket") != 0)
        return write_http_text(wsi, HTTP_STATUS_BAD_REQUEST, "only WebSocket upgrades\n") == 0 ? 1
                                                                                               : -1;
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(path, server->websocket_path) != 0) {
        server_log(SERVER_LOG_INFO, "refused an upgrade from %s: no WebSocket endpoint there",
                   peer);
        return write_http_text(wsi, HTTP_STATUS_NOT_FOUND, "not found\n") == 0 ? 1 : -1;
    }
    if (!offers_subprotocol(wsi)) {
        server_log(SERVER_LOG_INFO, "refused an upgrade from %s: subprotocol %s not offered", peer,
                   PROTOCOL_SUBPROTOCOL);
        return write_http_text(wsi, HTTP_STATUS_BAD_REQUEST,
                               "offer the WebSocket subprotocol " PROTOCOL_SUBPROTOCOL "\n") == 0
                   ? 1
                   : -1;
    }
    if (server->shutting_down)
        return write_http_text(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down\n") == 0 ? 1
                                                                                             : -1;

    server_login *login = calloc(1, sizeof *login);
    if (!login)
        return -1;
    char reason[512];
    int result = authenticate(server, wsi, login, reason, sizeof reason);
    if (result < 0) {
        server_login_free(login);
        if (result != -EACCES) {
            server_log(SERVER_LOG_ERROR, "cannot authenticate %s: %s", peer, reason);
            return write_http_text(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                   "authentication failed on the server\n") == 0
                       ? 1
                       : -1;
        }
        server_log(SERVER_LOG_WARN, "refused an upgrade from %s: %s", peer, reason);
        return write_http_text(wsi, HTTP_STATUS_UNAUTHORIZED, "authentication failed\n") == 0 ? 1
                                                                                              : -1;
    }
    lws_set_opaque_user_data(wsi, login);
    return 0;
}

static void forget_pending_login(struct lws *wsi)
{
    server_login *login = lws_get_opaque_user_data(wsi);
    if (!login)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    server_login_free(login);
}

/* ---- WebSocket connections --------------------------------------------- */

static void wants_to_write(void *transport_context)
{
    lws_callback_on_writable(transport_context);
}

static int open_connection(server *server, struct lws *wsi, server_connection *connection)
{
    server_login *login = lws_get_opaque_user_data(wsi);
    if (!login)
        return -1;
    peer_name(wsi, connection->peer, sizeof connection->peer);
    connection->engine_connection =
        sync_engine_connect(server->engine, &login->user, wsi, now_ms());
    if (!connection->engine_connection) {
        server_log(SERVER_LOG_ERROR, "out of memory accepting a connection from %s",
                   connection->peer);
        forget_pending_login(wsi);
        return -1;
    }
    server->connection_count++;
    server_log(SERVER_LOG_DEBUG, "connection from %s as user %s%s", connection->peer,
               login->user.id, login->login_frame ? ", with a new session token" : "");
    connection->login_frame = login->login_frame;
    connection->login_frame_length = login->login_frame_length;
    login->login_frame = NULL;
    if (connection->login_frame)
        lws_callback_on_writable(wsi);
    forget_pending_login(wsi);
    return 0;
}

static void close_connection(server *server, server_connection *connection)
{
    free(connection->message);
    connection->message = NULL;
    free_login_frame(connection->login_frame, connection->login_frame_length);
    connection->login_frame = NULL;
    if (!connection->engine_connection)
        return;
    sync_engine_disconnect(server->engine, connection->engine_connection);
    connection->engine_connection = NULL;
    server->connection_count--;
    server_log(SERVER_LOG_DEBUG, "connection from %s closed", connection->peer);
    if (server->shutting_down && server->connection_count == 0)
        server->finished = true;
}

/* Append to the message, keeping at most PROTOCOL_MAX_MESSAGE_BYTES + 1
 * bytes: one more than the limit is all it takes to tell the engine the
 * message is too large.  0 or -ENOMEM. */
static int buffer_fragment(server_connection *connection, const char *data, size_t length)
{
    size_t limit = PROTOCOL_MAX_MESSAGE_BYTES + 1;
    if (length > limit - connection->message_length)
        length = limit - connection->message_length;
    size_t needed = connection->message_length + length;
    if (needed > connection->message_capacity) {
        size_t capacity = connection->message_capacity ? connection->message_capacity : 4096;
        while (capacity < needed)
            capacity *= 2;
        if (capacity > limit)
            capacity = limit;
        char *grown = realloc(connection->message, capacity);
        if (!grown)
            return -ENOMEM;
        connection->message = grown;
        connection->message_capacity = capacity;
    }
    memcpy(connection->message + connection->message_length, data, length);
    connection->message_length = needed;
    return 0;
}

static void hand_over_message(server *server, struct lws *wsi, server_connection *connection)
{
    int code =
        sync_engine_receive(server->engine, connection->engine_connection, connection->message,
                            connection->message_length, connection->message_binary, now_ms());
    if (code != 0) {
        connection->input_ended = true;
        server_log(SERVER_LOG_INFO, "closing the connection from %s: error %d (%s)",
                   connection->peer, code, protocol_error_code_name(code));
    }
    connection->message_length = 0;
    if (connection->message_capacity > SERVER_KEPT_BUFFER_BYTES) {
        free(connection->message);
        connection->message = NULL;
        connection->message_capacity = 0;
    }
    lws_callback_on_writable(wsi);
}

/* A piece of a message: a whole frame, a fragment, or a part of either as
 * lws reads them. */
static int receive_data(server *server, struct lws *wsi, server_connection *connection,
                        const char *data, size_t length)
{
    if (!connection->engine_connection)
        return -1;
    if (!connection->message_in_progress) {
        connection->message_in_progress = true;
        connection->message_binary = lws_frame_is_binary(wsi);
        connection->message_handed_over = false;
        connection->message_length = 0;
    }
    bool final = lws_is_final_fragment(wsi);
    if (!connection->input_ended && !connection->message_handed_over) {
        if (buffer_fragment(connection, data, length) < 0) {
            server_log(SERVER_LOG_ERROR, "out of memory receiving from %s", connection->peer);
            return -1;
        }
        bool too_large = connection->message_length > PROTOCOL_MAX_MESSAGE_BYTES;
        if (too_large || final) {
            connection->message_handed_over = too_large;
            hand_over_message(server, wsi, connection);
        }
    }
    if (final)
        connection->message_in_progress = false;
    return 0;
}

/* One text frame; the copy of a secret one is wiped.  0, or -1 when the
 * connection must be dropped. */
static int write_text_frame(struct lws *wsi, const server_connection *connection,
                            const char *frame, size_t length, bool secret)
{
    unsigned char *buffer = malloc(LWS_PRE + length);
    if (!buffer) {
        server_log(SERVER_LOG_ERROR, "out of memory sending to %s", connection->peer);
        return -1;
    }
    memcpy(buffer + LWS_PRE, frame, length);
    int written = lws_write(wsi, buffer + LWS_PRE, length, LWS_WRITE_TEXT);
    if (secret)
        explicit_bzero(buffer + LWS_PRE, length);
    free(buffer);
    if (written < 0 || (size_t)written < length) {
        server_log(SERVER_LOG_INFO, "cannot send to %s: connection lost", connection->peer);
        return -1;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* One frame per writable callback, the login message before the
 * engine's; then ask for another while the engine has more; close once
 * it says so. */
static int send_next_frame(server *server, struct lws *wsi, server_connection *connection)
{
    if (!connection->engine_connection)
        return -1;
    if (connection->login_frame) {
        int result = write_text_frame(wsi, connection, connection->login_frame,
                                      connection->login_frame_length, true);
        free_login_frame(connection->login_frame, connection->login_frame_length);
        connection->login_frame = NULL;
        return result;
    }
    size_t length;
    char *frame = sync_engine_next_frame(server->engine, connection->engine_connection, &length);
    if (!frame) {
        int close_code = sync_engine_close_code(connection->engine_connection);
        if (close_code == 0)
            return 0;
        lws_close_reason(wsi, (enum lws_close_status)close_code, NULL, 0);
        return -1;
    }
    int result = write_text_frame(wsi, connection, frame, length, false);
    free(frame);
    return result;
}

static int server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t length)
{
    server *server = lws_context_user(lws_get_context(wsi));
    server_connection *connection = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return answer_http(server, wsi, in);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(server, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        return open_connection(server, wsi, connection);
    case LWS_CALLBACK_RECEIVE:
        return receive_data(server, wsi, connection, in, length);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return send_next_frame(server, wsi, connection);
    case LWS_CALLBACK_CLOSED:
        close_connection(server, connection);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* An upgrade that failed after it was authenticated. */
        forget_pending_login(wsi);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, length);
    }
}

static const struct lws_protocols server_protocols[] = {
    {
        .name = PROTOCOL_SUBPROTOCOL,
        .callback = server_callback,
        .per_session_data_size = sizeof(server_connection),
        .tx_packet_size = SERVER_SEND_CHUNK_BYTES,
    },
    {0},
};

/* ---- Timer, history trimming, expired sessions, shutdown ---------------- */

static void trim_history(server *server, int64_t now)
{
    double days = app_config_sync(server->app)->client_max_offline_days;
    int64_t cutoff = now - (int64_t)(days * MS_PER_DAY);
    int removed = sync_store_trim_history(server->store, cutoff);
    if (removed < 0)
        server_log(SERVER_LOG_ERROR, "cannot trim the history: %s", sync_store_last_error());
    else if (removed > 0)
        server_log(SERVER_LOG_INFO, "trimmed %d changesets older than %g days from the history",
                   removed, days);
    server->next_trim_ms = now + SERVER_TRIM_INTERVAL_MS;
}

/* With the history, as often: an expired token costs only its record. */
static void purge_expired_sessions(server *server)
{
    int removed = auth_purge_expired_sessions(server->auth);
    if (removed < 0)
        server_log(SERVER_LOG_ERROR, "cannot purge expired session tokens: %s",
                   auth_last_error());
    else if (removed > 0)
        server_log(SERVER_LOG_INFO, "purged %d expired session tokens", removed);
}

/* A session token lives as long as a client may stay offline: a client
 * away longer needs a client reset anyway. */
static int64_t session_lifetime_ms(const app_config *app)
{
    double lifetime = app_config_sync(app)->client_max_offline_days * MS_PER_DAY;
    return lifetime < 1 ? 1 : lifetime >= (double)INT64_MAX ? INT64_MAX : (int64_t)lifetime;
}

static void tick(lws_sorted_usec_list_t *timer)
{
    server *server = lws_container_of(timer, struct server, tick_timer);
    int64_t now = now_ms();
    sync_engine_tick(server->engine, now);
    if (now >= server->next_trim_ms) {
        trim_history(server, now);
        purge_expired_sessions(server);
    }
    if (server->shutting_down && now >= server->shutdown_deadline_ms) {
        server_log(SERVER_LOG_WARN, "%zu connections did not close in time; dropping them",
                   server->connection_count);
        server->finished = true;
    }
    lws_sul_schedule(server->context, 0, &server->tick_timer, tick, SERVER_TICK_MICROSECONDS);
}

static void begin_shutdown(server *server)
{
    server->shutting_down = true;
    server->shutdown_deadline_ms = now_ms() + SERVER_SHUTDOWN_GRACE_MS;
    server_log(SERVER_LOG_INFO, "shutting down: closing %zu connections", server->connection_count);
    sync_engine_shutdown(server->engine);
    if (server->connection_count == 0)
        server->finished = true;
}

/* ---- Start and run ----------------------------------------------------- */

/* libwebsockets' notices are about its own workings (its version, a
 * refused upgrade it also reports through us): debug records here. */
static void route_libwebsockets_log(int level, const char *line)
{
    server_log_level ours = level & LLL_ERR    ? SERVER_LOG_ERROR
                            : level & LLL_WARN ? SERVER_LOG_WARN
                                               : SERVER_LOG_DEBUG;
    size_t length = strlen(line);
    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
        length--;
    server_log(ours, "libwebsockets: %.*s", (int)length, line);
}

static void configure_libwebsockets_log(void)
{
    static const int masks[] = {
        [SERVER_LOG_ERROR] = LLL_ERR,
        [SERVER_LOG_WARN] = LLL_ERR | LLL_WARN,
        [SERVER_LOG_INFO] = LLL_ERR | LLL_WARN,
        [SERVER_LOG_DEBUG] = LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO,
    };
    lws_set_log_level(masks[server_log_get_level()], route_libwebsockets_log);
}

/* The path of the WebSocket endpoint; NULL when out of memory. */
static char *websocket_path_for(const app_config *app)
{
    const char *app_id = app_config_app_id(app);
    if (!app_id) {
        app_id = app_config_name(app);
        server_log(SERVER_LOG_WARN,
                   "the app export has no app_id; using its name \"%s\" as the "
                   "App ID",
                   app_id);
    }
    char *path;
    if (asprintf(&path, "/api/client/v2.0/app/%s/realm-sync", app_id) < 0)
        return NULL;
    return path;
}

static int start_listening(server *server, const server_options *options)
{
    bool tls = options->tls_cert_file != NULL;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options =
        LWS_SERVER_OPTION_EXPLICIT_VHOSTS | (tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
    info.user = server;
    info.max_http_header_data = SERVER_MAX_HEADER_BYTES;
    server->context = lws_create_context(&info);
    if (!server->context) {
        server_log(SERVER_LOG_ERROR, "cannot create the libwebsockets context");
        return -1;
    }
    signal_context = server->context;

    bool ipv6_address = strchr(options->listen_host, ':') != NULL;
    info.port = options->listen_port;
    info.iface = options->listen_host[0] ? options->listen_host : NULL;
    info.protocols = server_protocols;
    info.vhost_name = "realmfs";
    /* HTTP/1.1 only: the HTTP answers are written in one piece. */
    info.alpn = "http/1.1";
    if (!ipv6_address && info.iface)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.ssl_cert_filepath = options->tls_cert_file;
    info.ssl_private_key_filepath = options->tls_key_file;
    struct lws_vhost *vhost = lws_create_vhost(server->context, &info);
    if (!vhost) {
        server_log(SERVER_LOG_ERROR,
                   "cannot listen on %s:%d (address in use, or a bad TLS "
                   "certificate or key?)",
                   options->listen_host, options->listen_port);
        return -1;
    }
    server_log(SERVER_LOG_INFO, "listening on %s://%s%s%s:%d%s", tls ? "wss" : "ws",
               ipv6_address ? "[" : "", options->listen_host[0] ? options->listen_host : "*",
               ipv6_address ? "]" : "", lws_get_vhost_listen_port(vhost), server->websocket_path);
    return 0;
}

static void install_signal_handlers(void)
{
    stop_requested = 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handle_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    action.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &action, NULL);
}

int server_run(const server_options *options, app_config *app, const rules *rules,
               sync_schema *schema, sync_store *store, auth *auth)
{
    server server = {.app = app, .store = store, .auth = auth,
                     .session_lifetime_ms = session_lifetime_ms(app)};
    int exit_code = 1;
    configure_libwebsockets_log();
    server.websocket_path = websocket_path_for(app);
    if (!server.websocket_path) {
        server_log(SERVER_LOG_ERROR, "out of memory");
        return 1;
    }
    const sync_engine_callbacks callbacks = {.wants_to_write = wants_to_write};
    char message[512];
    if (sync_engine_new(app, rules, schema, store, NULL, &callbacks, &server.engine, message,
                        sizeof message) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot start the sync engine: %s", message);
        goto done;
    }
    /* Before the log says "listening": from then on SIGTERM must work. */
    install_signal_handlers();
    if (start_listening(&server, options) < 0)
        goto done;

    trim_history(&server, now_ms());
    purge_expired_sessions(&server);
    lws_sul_schedule(server.context, 0, &server.tick_timer, tick, SERVER_TICK_MICROSECONDS);
    exit_code = 0;
    while (!server.finished) {
        if (stop_requested && !server.shutting_down)
            begin_shutdown(&server);
        if (server.finished)
            break;
        if (lws_service(server.context, 0) < 0) {
            server_log(SERVER_LOG_ERROR, "the event loop failed");
            exit_code = 1;
            break;
        }
    }
    lws_sul_cancel(&server.tick_timer);
done:
    signal_context = NULL;
    /* Destroying the context closes what is still open, which calls back
     * into the engine: free the engine after it. */
    if (server.context)
        lws_context_destroy(server.context);
    sync_engine_free(server.engine);
    free(server.websocket_path);
    if (sync_store_sync(store) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot flush the store: %s", sync_store_last_error());
        exit_code = 1;
    }
    if (exit_code == 0)
        server_log(SERVER_LOG_INFO, "stopped");
    return exit_code;
}

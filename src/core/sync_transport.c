/*
 * sync_transport.c — client WebSocket connections on libwebsockets (see
 * sync_transport.h for the contract).
 *
 * Every connection owns a FIFO of outgoing frames, each kept with the
 * LWS_PRE bytes of headroom lws_write needs, and a buffer in which the
 * fragments of an incoming frame are joined.  Everything runs in the
 * thread that calls sync_transport_service.
 */
#include "realmfs/sync_transport.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/protocol.h"

typedef struct outgoing_frame {
    struct outgoing_frame *next;
    size_t length;
    unsigned char bytes[]; /* LWS_PRE bytes of headroom, then the frame */
} outgoing_frame;

struct sync_transport {
    struct lws_context *context;
    char *ca_file;
    void (*woken)(void *context);
    void *woken_context;
    bool destroying; /* sync_transport_free: no more handler calls */
    lws_sorted_usec_list_t service_deadline; /* bounds sync_transport_service's wait */
};

struct sync_transport_connection {
    sync_transport *transport;
    struct lws *wsi;
    sync_transport_handlers handlers;
    void *context;
    char *authorization;
    char *host;
    char *path;
    outgoing_frame *first;
    outgoing_frame *last;
    size_t queued_bytes;
    char *incoming;            /* the fragments of the current frame */
    size_t incoming_length;
    size_t incoming_capacity;
    bool incoming_too_large;   /* a frame past the limit: close once it ends */
    bool closing;              /* sync_transport_close: close once drained */
    bool in_connect;           /* inside lws_client_connect_via_info */
    bool failed_in_connect;    /* ... which already failed */
    int close_code;            /* sent by the server */
    char reason[256];
};

static int transport_fail(char *message, size_t message_size, int error, const char *format,
                          ...)
{
    if (message_size) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(message, message_size, format, arguments);
        va_end(arguments);
    }
    return error;
}

static void connection_free(sync_transport_connection *connection)
{
    for (outgoing_frame *frame = connection->first, *next; frame; frame = next) {
        next = frame->next;
        free(frame);
    }
    free(connection->incoming);
    if (connection->authorization) {
        explicit_bzero(connection->authorization, strlen(connection->authorization));
        free(connection->authorization);
    }
    free(connection->host);
    free(connection->path);
    free(connection);
}

/* The end of a connection, whichever callback reports it: tell the owner
 * once, then free.  A failure inside sync_transport_connect is returned by
 * that call instead, which frees the connection. */
static void connection_finish(sync_transport_connection *connection, int http_status,
                              const char *reason)
{
    lws_set_opaque_user_data(connection->wsi, NULL);
    if (connection->in_connect) {
        connection->failed_in_connect = true;
        if (!connection->reason[0])
            snprintf(connection->reason, sizeof connection->reason, "%s", reason);
        return;
    }
    sync_transport *transport = connection->transport;
    if (!transport->destroying && connection->handlers.closed) {
        const char *said = connection->reason[0] ? connection->reason : reason;
        connection->handlers.closed(connection, connection->close_code, http_status,
                                    said ? said : "connection closed", connection->context);
    }
    connection_free(connection);
}

/* The server's close frame: a 2-byte code, then a reason. */
static void record_peer_close(sync_transport_connection *connection, const unsigned char *payload,
                              size_t length)
{
    if (length < 2)
        return;
    connection->close_code = payload[0] << 8 | payload[1];
    size_t reason_length = length - 2 < sizeof connection->reason - 1
                               ? length - 2 : sizeof connection->reason - 1;
    memcpy(connection->reason, payload + 2, reason_length);
    connection->reason[reason_length] = '\0';
}

/* Join one fragment; deliver the frame when it is whole.  Returns -1 when
 * the connection must close. */
static int receive_fragment(sync_transport_connection *connection, struct lws *wsi,
                            const char *bytes, size_t length)
{
    if (lws_is_first_fragment(wsi)) {
        connection->incoming_length = 0;
        connection->incoming_too_large = false;
    }
    if (lws_frame_is_binary(wsi)) {
        static const char reason[] = "binary frames are not part of the protocol";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)reason,
                         sizeof reason - 1);
        return -1;
    }
    if (connection->incoming_length + length > PROTOCOL_MAX_MESSAGE_BYTES)
        connection->incoming_too_large = true;
    if (!connection->incoming_too_large) {
        size_t needed = connection->incoming_length + length + 1;
        if (needed > connection->incoming_capacity) {
            size_t capacity = connection->incoming_capacity ? connection->incoming_capacity : 4096;
            while (capacity < needed)
                capacity *= 2;
            char *grown = realloc(connection->incoming, capacity);
            if (!grown)
                return -1;
            connection->incoming = grown;
            connection->incoming_capacity = capacity;
        }
        memcpy(connection->incoming + connection->incoming_length, bytes, length);
        connection->incoming_length += length;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    if (connection->incoming_too_large) {
        static const char reason[] = "frame larger than the protocol allows";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)reason,
                         sizeof reason - 1);
        return -1;
    }
    connection->incoming[connection->incoming_length] = '\0';
    if (connection->handlers.received)
        connection->handlers.received(connection, connection->incoming,
                                      connection->incoming_length, connection->context);
    return 0;
}

/* Write the first queued frame; ask for another turn while more wait. */
static int write_next_frame(sync_transport_connection *connection, struct lws *wsi)
{
    outgoing_frame *frame = connection->first;
    if (!frame) {
        if (!connection->closing)
            return 0;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    int written = lws_write(wsi, frame->bytes + LWS_PRE, frame->length, LWS_WRITE_TEXT);
    if (written < 0 || (size_t)written < frame->length)
        return -1;
    connection->first = frame->next;
    if (!connection->first)
        connection->last = NULL;
    connection->queued_bytes -= frame->length;
    free(frame);
    if (connection->first || connection->closing)
        lws_callback_on_writable(wsi);
    return 0;
}

static int add_authorization_header(sync_transport_connection *connection, struct lws *wsi,
                                    void *in, size_t length)
{
    if (!connection->authorization)
        return 0;
    unsigned char **position = in;
    unsigned char *end = *position + length;
    return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                        (unsigned char *)connection->authorization,
                                        (int)strlen(connection->authorization), position, end)
               ? -1 : 0;
}

static int transport_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                              void *in, size_t length)
{
    (void)user;
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        sync_transport *transport = lws_context_user(lws_get_context(wsi));
        if (transport && !transport->destroying && transport->woken)
            transport->woken(transport->woken_context);
        return 0;
    }
    sync_transport_connection *connection = lws_get_opaque_user_data(wsi);
    if (!connection)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return add_authorization_header(connection, wsi, in, length);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!connection->transport->destroying && connection->handlers.connected)
            connection->handlers.connected(connection, connection->context);
        if (connection->first || connection->closing)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return receive_fragment(connection, wsi, in, length);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return write_next_frame(connection, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        record_peer_close(connection, in, length);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char text[256];
        snprintf(text, sizeof text, "cannot connect: %.*s", in ? (int)length : 7,
                 in ? (const char *)in : "unknown");
        connection_finish(connection, (int)lws_http_client_http_response(wsi), text);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        connection_finish(connection, 0, "connection closed");
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols transport_protocols[] = {
    {.name = PROTOCOL_SUBPROTOCOL, .callback = transport_callback, .rx_buffer_size = 65536},
    {0},
};

int sync_transport_new(const sync_transport_options *options, sync_transport **out,
                       char *message, size_t message_size)
{
    *out = NULL;
    sync_transport *transport = calloc(1, sizeof *transport);
    if (!transport)
        return transport_fail(message, message_size, -ENOMEM, "out of memory");
    if (options) {
        transport->woken = options->woken;
        transport->woken_context = options->woken_context;
        if (options->ca_file && !(transport->ca_file = strdup(options->ca_file))) {
            free(transport);
            return transport_fail(message, message_size, -ENOMEM, "out of memory");
        }
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = transport_protocols;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.client_ssl_ca_filepath = transport->ca_file;
    info.gid = -1;
    info.uid = -1;
    info.user = transport;
    transport->context = lws_create_context(&info);
    if (!transport->context) {
        free(transport->ca_file);
        free(transport);
        return transport_fail(message, message_size, -EIO,
                              "libwebsockets could not create a client context");
    }
    *out = transport;
    return 0;
}

void sync_transport_free(sync_transport *transport)
{
    if (!transport)
        return;
    transport->destroying = true;
    lws_context_destroy(transport->context);
    free(transport->ca_file);
    free(transport);
}

/* Split url into what lws_client_connect_info needs.  The path of the url,
 * if any, prefixes the protocol's path. */
static int parse_url(const char *url, const char *app_id, struct lws_client_connect_info *info,
                     sync_transport_connection *connection, char *message, size_t message_size)
{
    char copy[1024];
    if (snprintf(copy, sizeof copy, "%s", url) >= (int)sizeof copy)
        return transport_fail(message, message_size, -EINVAL, "server url is too long");
    const char *scheme, *address, *path;
    int port;
    if (lws_parse_uri(copy, &scheme, &address, &port, &path) || !address[0])
        return transport_fail(message, message_size, -EINVAL,
                              "server url \"%s\" is not ws://HOST:PORT or wss://HOST:PORT", url);
    bool secure = strcmp(scheme, "wss") == 0;
    if (!secure && strcmp(scheme, "ws") != 0)
        return transport_fail(message, message_size, -EINVAL,
                              "server url \"%s\": the scheme must be ws or wss", url);
    const char *prefix = path;
    size_t prefix_length = strlen(prefix);
    while (prefix_length && prefix[prefix_length - 1] == '/')
        prefix_length--;
    if (asprintf(&connection->path, "/%.*s%sapi/client/v2.0/app/%s/realm-sync",
                 (int)prefix_length, prefix, prefix_length ? "/" : "", app_id) < 0) {
        connection->path = NULL;
        return transport_fail(message, message_size, -ENOMEM, "out of memory");
    }
    if (!(connection->host = strdup(address)))
        return transport_fail(message, message_size, -ENOMEM, "out of memory");
    info->address = connection->host;
    info->host = connection->host;
    info->port = port;
    info->path = connection->path;
    info->ssl_connection = secure ? LCCSCF_USE_SSL : 0;
    return 0;
}

int sync_transport_connect(sync_transport *transport, const char *url, const char *app_id,
                           const char *authorization, const sync_transport_handlers *handlers,
                           void *context, sync_transport_connection **out, char *message,
                           size_t message_size)
{
    *out = NULL;
    sync_transport_connection *connection = calloc(1, sizeof *connection);
    if (!connection)
        return transport_fail(message, message_size, -ENOMEM, "out of memory");
    connection->transport = transport;
    connection->handlers = *handlers;
    connection->context = context;
    if (authorization && !(connection->authorization = strdup(authorization))) {
        connection_free(connection);
        return transport_fail(message, message_size, -ENOMEM, "out of memory");
    }
    struct lws_client_connect_info info;
    memset(&info, 0, sizeof info);
    int error = parse_url(url, app_id, &info, connection, message, message_size);
    if (error) {
        connection_free(connection);
        return error;
    }
    info.context = transport->context;
    info.protocol = PROTOCOL_SUBPROTOCOL;
    info.opaque_user_data = connection;
    info.pwsi = &connection->wsi;
    connection->in_connect = true;
    struct lws *wsi = lws_client_connect_via_info(&info);
    connection->in_connect = false;
    if (!wsi || connection->failed_in_connect) {
        error = transport_fail(message, message_size, -EIO, "cannot connect to %s: %s", url,
                               connection->reason[0] ? connection->reason : "refused");
        if (wsi)
            lws_set_opaque_user_data(wsi, NULL);
        connection_free(connection);
        return error;
    }
    *out = connection;
    return 0;
}

int sync_transport_send(sync_transport_connection *connection, const char *text, size_t length)
{
    if (connection->closing)
        return -ENOTCONN;
    outgoing_frame *frame = malloc(sizeof *frame + LWS_PRE + length);
    if (!frame)
        return -ENOMEM;
    frame->next = NULL;
    frame->length = length;
    memcpy(frame->bytes + LWS_PRE, text, length);
    if (connection->last)
        connection->last->next = frame;
    else
        connection->first = frame;
    connection->last = frame;
    connection->queued_bytes += length;
    lws_callback_on_writable(connection->wsi);
    return 0;
}

size_t sync_transport_queued_bytes(const sync_transport_connection *connection)
{
    return connection->queued_bytes;
}

void sync_transport_close(sync_transport_connection *connection)
{
    connection->closing = true;
    lws_callback_on_writable(connection->wsi);
}

/* A timer that is already due when lws_service starts runs before its
 * poll, which would then sleep until some later timer: waking the loop
 * makes that poll return at once.  (options.woken then runs too, which is
 * harmless: a wake only asks the owner to look again.) */
static void service_deadline_reached(lws_sorted_usec_list_t *deadline)
{
    sync_transport *transport = lws_container_of(deadline, sync_transport, service_deadline);
    lws_cancel_service(transport->context);
}

/* libwebsockets 4 ignores lws_service's timeout: it waits until the next
 * event or scheduled timer, however far.  A timer at the deadline keeps
 * the promise of the header. */
int sync_transport_service(sync_transport *transport, int timeout_ms)
{
    lws_sul_schedule(transport->context, 0, &transport->service_deadline,
                     service_deadline_reached,
                     (lws_usec_t)(timeout_ms > 0 ? timeout_ms : 0) * LWS_US_PER_MS);
    int result = lws_service(transport->context, 0);
    lws_sul_cancel(&transport->service_deadline);
    return result < 0 ? -EIO : 0;
}

void sync_transport_wake(sync_transport *transport)
{
    lws_cancel_service(transport->context);
}

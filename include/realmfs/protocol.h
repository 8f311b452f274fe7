/*
 * protocol.h — the messages of the realmfs sync protocol, shared by the
 * sync server and the sync client: WebSocket text frames in, validated
 * message structs out, and back.  docs/protocol.md describes the protocol
 * (connection, session lifecycle, every message with an example, error
 * codes); this header is the C contract.
 *
 * Every frame is one JSON object with a "type" member naming the message.
 * Reading is strict, because frames come from the network: a frame over
 * PROTOCOL_MAX_MESSAGE_BYTES or nested deeper than PROTOCOL_MAX_DEPTH is
 * refused before it is parsed; then invalid JSON (syntax, invalid UTF-8,
 * trailing bytes, duplicate keys), an unknown type, an unknown member, a
 * missing member, a member of the wrong type and every rule below are
 * refused, with a message that names the member:
 *
 *   upload.changesets[3].instructions[0]: path is empty
 *   bind.session: must be an integer from 1 to 2^63 - 1
 *
 * Integers that are versions, identities, session ids and timestamps are
 * JSON integers from 0 to 2^63 - 1 (never negative, fractional, a string
 * or a float such as 1.0); stored as uint64_t.  A session id is at least 1.
 *
 * The text protocol_serialize writes is canonical: compact JSON, "type"
 * first, then the members in the order docs/protocol.md lists them.
 * Parsing that text and serializing the result gives the same bytes.
 */
#ifndef REALMFS_PROTOCOL_H
#define REALMFS_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realmfs/changeset.h"

/* The WebSocket subprotocol (Sec-WebSocket-Protocol) of this version. */
#define PROTOCOL_SUBPROTOCOL "realmfs.sync.v1"

/* The largest frame either side sends or accepts, in bytes. */
#define PROTOCOL_MAX_MESSAGE_BYTES (16 * 1024 * 1024)

/*
 * The deepest nesting of arrays and objects in a frame (the frame's object
 * is level 1).  The value of a set nests at most CHANGESET_MAX_DEPTH - 1
 * levels (its path has a field name), one more as Extended JSON text
 * ({"$date": {"$numberLong": ...}}), below five levels: the message,
 * "changesets", the changeset, "instructions" and the instruction.  A
 * lower limit would refuse changesets that changeset.h accepts, which a
 * client then could never upload.
 */
#define PROTOCOL_MAX_DEPTH (CHANGESET_MAX_DEPTH + 5)

/* The client sends a ping this often; the server closes a connection that
 * has been silent for PROTOCOL_IDLE_TIMEOUT_SECONDS. */
#define PROTOCOL_PING_INTERVAL_SECONDS 30
#define PROTOCOL_IDLE_TIMEOUT_SECONDS 120

typedef enum protocol_message_type {
    /* client to server */
    PROTOCOL_MESSAGE_BIND,
    PROTOCOL_MESSAGE_UPLOAD,
    PROTOCOL_MESSAGE_QUERY,
    PROTOCOL_MESSAGE_UNBIND,
    PROTOCOL_MESSAGE_PING,
    /* both ways */
    PROTOCOL_MESSAGE_MARK,
    /* server to client */
    PROTOCOL_MESSAGE_IDENT,
    PROTOCOL_MESSAGE_DOWNLOAD,
    PROTOCOL_MESSAGE_QUERY_ERROR,
    PROTOCOL_MESSAGE_ERROR,
    PROTOCOL_MESSAGE_UNBOUND,
    PROTOCOL_MESSAGE_PONG,
    PROTOCOL_MESSAGE_SCHEMA,
    PROTOCOL_MESSAGE_LOGIN,
} protocol_message_type;

typedef enum protocol_peer {
    PROTOCOL_CLIENT = 1,
    PROTOCOL_SERVER = 2,
} protocol_peer;

/*
 * Error codes, as sent in "error" and "query_error" messages and as
 * reported by protocol_parse.  100-199 concern the connection: the server
 * sends them with session 0 and closes the connection.  200-299 concern one
 * session, which ends (except compensating_write).  docs/protocol.md says
 * for each what the client should do.
 */
typedef enum protocol_error_code {
    PROTOCOL_ERROR_MALFORMED_MESSAGE = 100,
    PROTOCOL_ERROR_MESSAGE_TOO_LARGE = 101,
    PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE = 102,
    PROTOCOL_ERROR_UNEXPECTED_MESSAGE = 103,
    PROTOCOL_ERROR_UNSUPPORTED_PROTOCOL_VERSION = 104,
    PROTOCOL_ERROR_AUTHENTICATION_FAILED = 105,
    PROTOCOL_ERROR_GOING_AWAY = 106,
    PROTOCOL_ERROR_IDLE_TIMEOUT = 107,
    PROTOCOL_ERROR_INTERNAL = 108,

    PROTOCOL_ERROR_BAD_FILE_IDENTITY = 200,
    PROTOCOL_ERROR_CLIENT_RESET_REQUIRED = 201,
    PROTOCOL_ERROR_BAD_CHANGESET = 202,
    PROTOCOL_ERROR_BAD_QUERY = 203,
    PROTOCOL_ERROR_PERMISSION_DENIED = 204,
    PROTOCOL_ERROR_COMPENSATING_WRITE = 205,
    PROTOCOL_ERROR_SESSION_ALREADY_BOUND = 206,
} protocol_error_code;

/* What an "error" message asks the client to do. */
typedef enum protocol_action {
    PROTOCOL_ACTION_NONE,         /* "none" */
    PROTOCOL_ACTION_CLIENT_RESET, /* "client_reset" */
    PROTOCOL_ACTION_RECONNECT,    /* "reconnect" */
    PROTOCOL_ACTION_REVERT,       /* "revert" */
} protocol_action;

/*
 * Why a frame was refused (or could not be written).  session is the
 * session to report it on: the message's session for session-level codes
 * (200-299), 0 for connection-level ones.
 */
typedef struct protocol_error {
    protocol_error_code code;
    uint64_t session;
    char message[256]; /* "<type>.<member>: <what is wrong>" */
} protocol_error;

/* bind (client): open a session on a client file. */
typedef struct protocol_bind_body {
    uint64_t file_identity;                  /* 0: allocate one (then both below are 0) */
    uint64_t last_server_version;            /* download progress */
    uint64_t last_integrated_client_version; /* the latest acknowledgement received */
} protocol_bind_body;

/* upload (client): local changesets, client_version >= 1 and strictly
 * increasing. */
typedef struct protocol_upload_body {
    uint64_t last_integrated_server_version;
    changeset *changesets;
    size_t changeset_count;
    size_t changeset_capacity;
} protocol_upload_body;

/* One subscription of a query message. */
typedef struct protocol_subscription {
    char *collection; /* not empty */
    char *name;       /* not empty; unique within its collection */
    char *query;      /* RQL text, not empty */
} protocol_subscription;

/* query (client): the complete new subscription set.  Subscriptions of one
 * collection are written together, in the order of the collections' first
 * appearance. */
typedef struct protocol_query_body {
    uint64_t query_version; /* >= 1 */
    protocol_subscription *subscriptions;
    size_t subscription_count;
    size_t subscription_capacity;
} protocol_query_body;

/* mark (both ways): the client asks, the server answers with the same
 * request once everything up to the request has been downloaded. */
typedef struct protocol_mark_body {
    uint64_t request;
} protocol_mark_body;

/* ping (client) and pong (server, echoing the ping's timestamp). */
typedef struct protocol_ping_body {
    uint64_t timestamp; /* ms since the epoch, the client's clock */
} protocol_ping_body;

/* ident (server): the file identity allocated for a bind with identity 0. */
typedef struct protocol_ident_body {
    uint64_t file_identity; /* >= 1 */
} protocol_ident_body;

/* One changeset of a download, with the server version it got. */
typedef struct protocol_download_changeset {
    uint64_t server_version; /* >= 1 */
    changeset changeset;
} protocol_download_changeset;

/* One entry of a download's "access": whether the client may write an
 * object.  An object a client receives is writable until an entry says
 * otherwise; an entry holds until another entry for the same object, or
 * until the object leaves the client's view. */
typedef struct protocol_object_access {
    char *collection; /* not empty */
    json_t *id;       /* normalized string, int or ObjectId */
    bool writable;
} protocol_object_access;

/* download (server): changesets with server_version strictly increasing
 * and at most the message's server_version; access entries apply after
 * the changesets (the member is left out of the frame when there are
 * none). */
typedef struct protocol_download_body {
    uint64_t server_version;                 /* progress after this message */
    uint64_t last_integrated_client_version; /* the upload acknowledgement */
    uint64_t query_version;
    bool last_in_batch;
    double progress_estimate; /* 0.0 to 1.0 */
    protocol_download_changeset *changesets;
    size_t changeset_count;
    size_t changeset_capacity;
    protocol_object_access *access;
    size_t access_count;
    size_t access_capacity;
} protocol_download_body;

/* query_error (server): a query message the server refused; the session
 * keeps its previous subscriptions. */
typedef struct protocol_query_error_body {
    uint64_t query_version; /* >= 1 */
    protocol_error_code code;
    char *message;
} protocol_query_error_body;

/* A client write the server refused and undid. */
typedef struct protocol_compensating_write {
    char *collection;        /* not empty */
    json_t *id;              /* normalized string, int or ObjectId */
    char *reason;
    json_t *server_document; /* normalized document, NULL for JSON null */
    uint64_t client_version; /* >= 1: the uploaded changeset the write was in */
} protocol_compensating_write;

/* error (server).  session 0 exactly for connection-level codes;
 * compensating_write only with PROTOCOL_ERROR_COMPENSATING_WRITE, and then
 * optional (NULL when absent). */
typedef struct protocol_error_body {
    protocol_error_code code;
    char *message;
    bool try_again;
    double backoff_seconds; /* >= 0 */
    protocol_action action;
    protocol_compensating_write *compensating_write;
} protocol_error_body;

/* schema (server): the schemas the server holds, after a successful bind
 * and again whenever they change.  collections is a JSON object, each
 * member an App Services schema ({"bsonType": "object", ...}) named after
 * its collection. */
typedef struct protocol_schema_body {
    bool development_mode; /* clients may add collections and fields */
    json_t *collections;
} protocol_schema_body;

/* login (server): a session token for reconnecting as user_id with
 * "Authorization: Bearer <token>" (auth.h), the connection's first
 * message after a login with a credential, or when the token it opened
 * with was renewed. */
typedef struct protocol_login_body {
    char *user_id;    /* 24 lowercase hex digits */
    char *token;      /* 64 lowercase hex digits; a secret */
    uint64_t expires; /* ms since the epoch: refused from then on */
} protocol_login_body;

/*
 * A message.  session is 0 for ping, pong and login (they have none), and
 * for connection-level errors.  body holds the member named after the type;
 * pong uses body.ping, and unbind and unbound have no body.
 */
typedef struct protocol_message {
    protocol_message_type type;
    uint64_t session;
    union {
        protocol_bind_body bind;
        protocol_upload_body upload;
        protocol_query_body query;
        protocol_mark_body mark;
        protocol_ping_body ping;
        protocol_ident_body ident;
        protocol_download_body download;
        protocol_query_error_body query_error;
        protocol_error_body error;
        protocol_schema_body schema;
        protocol_login_body login;
    } body;
} protocol_message;

/*
 * Read one frame.  *out is overwritten (clear it first if it holds a
 * message); on success the caller owns it and frees it with
 * protocol_message_clear; on failure it is left zeroed.  text need not be
 * NUL-terminated.  Returns 0, or the protocol error code, which *error
 * holds too with its message and session (PROTOCOL_ERROR_INTERNAL when
 * memory ran out).  Whatever is wrong inside an element of "changesets"
 * (what changeset_parse refuses, versions out of order) is
 * PROTOCOL_ERROR_BAD_CHANGESET, an unknown type
 * PROTOCOL_ERROR_UNKNOWN_MESSAGE_TYPE, a frame over the limit
 * PROTOCOL_ERROR_MESSAGE_TOO_LARGE; everything else the frame gets wrong
 * is PROTOCOL_ERROR_MALFORMED_MESSAGE.  Which peer may send the type is
 * not checked here: see protocol_sent_by.
 */
int protocol_parse(const char *text, size_t length, protocol_message *out,
                   protocol_error *error);

/*
 * The canonical frame of a message: malloc'd, NUL-terminated, its length
 * (without the NUL) in *length.  The text is read back with protocol_parse
 * before it is returned, so a message that breaks a rule above, or whose
 * frame would pass PROTOCOL_MAX_MESSAGE_BYTES (split a download into a
 * batch of several messages then), is never sent: NULL with *error filled
 * in, naming the member, as a peer would report it.  Also NULL with
 * PROTOCOL_ERROR_INTERNAL when memory runs out or a string is not UTF-8.
 * Costs a parse of the frame besides writing it.
 */
char *protocol_serialize(const protocol_message *message, size_t *length,
                         protocol_error *error);

/*
 * As protocol_serialize for a download the server built itself, the same
 * bytes, without reading the frame back and without building a jansson
 * tree: the text is written straight into one growing buffer.  Its
 * changesets must have been made by changeset_append or changeset_diff,
 * which refuse everything the protocol refuses inside a changeset, from
 * strings that are valid UTF-8 (every string jansson built is); what is
 * still checked: the rule between the changesets and the message's
 * server_version, numbers JSON cannot hold (PROTOCOL_ERROR_INTERNAL) and
 * the frame's size (PROTOCOL_ERROR_MESSAGE_TOO_LARGE).  Writing this way
 * costs a fraction of protocol_serialize, which matters for bootstraps.
 * Any other type of message goes through protocol_serialize.
 */
char *protocol_serialize_download(const protocol_message *message, size_t *length,
                                  protocol_error *error);

/*
 * A download the server writes as it builds it, for the bootstraps and
 * catch-ups it streams: instructions go straight into the frame's text
 * instead of into a changeset (copies of every collection, id, path and
 * value, written out and freed again, were most of a bootstrap's time).
 * The frame holds at most one changeset: origin 0, client_version 0, the
 * instructions added since the last finish, in order.
 *
 *   protocol_download_writer_new      an empty writer, or -ENOMEM
 *   protocol_download_writer_add      a changeset_visitor: give it to
 *                                     changeset_diff_visit or
 *                                     changeset_replace_visit, which check
 *                                     each instruction first (only checked
 *                                     instructions may be added); 0,
 *                                     -ENOMEM or -E2BIG with a message
 *   protocol_download_writer_finish   the frame of message (a download
 *                                     whose own changesets are empty; its
 *                                     access entries are written too) with
 *                                     the changeset added to it, at
 *                                     changeset_server_version (1 to the
 *                                     message's server_version) and
 *                                     timestamp, and "changesets": [] when
 *                                     nothing was added; the same bytes
 *                                     protocol_serialize_download writes
 *                                     for that message, and its errors.
 *                                     The writer is empty again afterwards,
 *                                     whatever the result, and keeps its
 *                                     buffer for the next frame.
 */
typedef struct protocol_download_writer protocol_download_writer;

int protocol_download_writer_new(protocol_download_writer **out);
void protocol_download_writer_free(protocol_download_writer *writer);
size_t protocol_download_writer_instruction_count(const protocol_download_writer *writer);
int protocol_download_writer_add(void *writer, changeset_operation operation,
                                 const char *collection, const json_t *id, const char *path,
                                 const json_t *value, char *message, size_t message_size);
char *protocol_download_writer_finish(protocol_download_writer *writer,
                                      const protocol_message *message,
                                      uint64_t changeset_server_version, int64_t timestamp,
                                      size_t *length, protocol_error *error);

/* Free everything the message points to (strings, arrays, changesets,
 * json values with one reference each, compensating_write), so all of it
 * must be the message's own; then zero it. */
void protocol_message_clear(protocol_message *message);

/* A zeroed message of that type and session (0 where it has none). */
void protocol_message_init(protocol_message *message, protocol_message_type type,
                           uint64_t session);

/*
 * An "error" message with the usual advice for the code (try_again,
 * backoff_seconds, action as docs/protocol.md lists them) and a copy of
 * text.  session must be 0 for connection-level codes.  Overwrites
 * *message.  0, -EINVAL when code is not a protocol_error_code, -ENOMEM.
 */
int protocol_error_init(protocol_message *message, uint64_t session, protocol_error_code code,
                        const char *text);

/*
 * Builders for the arrays of a message, which protocol_message_clear frees:
 * fill them only through these (or protocol_parse), which keep count and
 * capacity.  Each returns 0 or -ENOMEM, and then changes nothing.
 */

/* Moves *added into the upload and zeroes *added. */
int protocol_upload_add(protocol_upload_body *upload, changeset *added);

/* Moves *added into the download with its server version, and zeroes
 * *added. */
int protocol_download_add(protocol_download_body *download, uint64_t server_version,
                          changeset *added);

/* Appends an access entry, with a copy of collection and a new reference
 * to id (normalized, never changed afterwards). */
int protocol_download_add_access(protocol_download_body *download, const char *collection,
                                 json_t *id, bool writable);

/* Copies the strings of one subscription into the query. */
int protocol_query_add(protocol_query_body *query, const char *collection, const char *name,
                       const char *query_text);

/* The wire name of a code ("bad_changeset"); NULL when it is not one. */
const char *protocol_error_code_name(int code);

/* The value of "type" for a message type ("query_error"); NULL when it is
 * not one. */
const char *protocol_message_type_name(protocol_message_type type);

/* Whether peer may send messages of that type (mark: both).  A receiver
 * answers a message its peer may not send with
 * PROTOCOL_ERROR_UNEXPECTED_MESSAGE. */
bool protocol_sent_by(protocol_message_type type, protocol_peer peer);

#endif

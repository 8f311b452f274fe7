/*
 * protocol_download_reader.h — protocol_parse for the frames a client
 * receives, quick on the downloads that carry most of them.
 *
 * protocol_parse builds jansson's tree of the whole frame, then the
 * changesets from the tree, then frees the tree: for a bootstrap, most of
 * a mount's work per object.  protocol_read_received reads a download
 * written the way realmfs-server writes them (protocol_serialize_download)
 * straight from its text into the changesets instead.
 */
#ifndef REALMFS_PROTOCOL_DOWNLOAD_READER_H
#define REALMFS_PROTOCOL_DOWNLOAD_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "realmfs/protocol.h"

/*
 * Exactly protocol_parse's contract and results, for every frame: the
 * same message, or the same error.  A download in the server's form —
 * compact JSON, the members in the order docs/protocol.md lists them (the
 * optional access entries too), ids and values that are strings, numbers, true,
 * false, null, {}, {"$oid": ...}, {"$date": "<ISO-8601>"} or arrays of
 * these — is read directly; at anything else (another message type,
 * whitespace, a key or value written another way, a broken rule) the
 * reader gives up and protocol_parse reads the frame.
 */
int protocol_read_received(const char *text, size_t length, protocol_message *out,
                           protocol_error *error);

/* The direct reading alone, for tests and measurements: true with *out
 * filled (as protocol_parse fills it) when the frame is a download in the
 * server's form that protocol_parse accepts; false otherwise, with *out
 * zeroed. */
bool protocol_read_download_text(const char *text, size_t length, protocol_message *out);

#endif

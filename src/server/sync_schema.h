/*
 * sync_schema.h — the server's schemas while it runs: the app export's,
 * extended by Development Mode.
 *
 * Outside Development Mode the schemas are the export's and never change;
 * a write whose result does not fit them is refused (the engine answers
 * it with a compensating write).
 *
 * In Development Mode (sync "development_mode_enabled": true) clients may
 * create collections and add fields: a document that does not fit is
 * admitted by extending its collection's schema additively (a new
 * collection, a new property with the bsonType its value has; never a
 * changed or removed one), and every field a subscription reads becomes
 * queryable.  What was learned is written to <data>/schema/learned.json
 * (atomically, under an flock, so that `realmfs-server import` may learn
 * at the same time) before the call returns, and read back by
 * sync_schema_open on the next start, so it survives restarts; `realmfs-
 * server export-app` writes it back out as an app export.  The types
 * inferred, and how learned and exported schemas merge, are described at
 * the top of sync_schema.c and in docs/configuration.md.
 *
 * Threads: the engine's thread owns a sync_schema and the app_config it
 * extends; nothing here locks.
 */
#ifndef REALMFS_SYNC_SCHEMA_H
#define REALMFS_SYNC_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/app_config.h"

typedef struct sync_schema sync_schema;

/*
 * Open the schemas of app, applying what an earlier run learned in
 * Development Mode (from data_directory), also when Development Mode is
 * now off.  app is extended in place and must outlive the sync_schema.
 * Nothing is written.  0, -ENOMEM, or -EINVAL/-EIO with a message naming
 * the file.
 */
int sync_schema_open(app_config *app, const char *data_directory, sync_schema **out,
                     char *message, size_t message_size);

/* NULL is allowed. */
void sync_schema_close(sync_schema *schema);

bool sync_schema_development_mode(const sync_schema *schema);

/*
 * Whether document (normalized, the state an upload would leave the
 * object in) may be stored in collection; document is not changed.
 * Outside Development Mode: 0 when it fits its collection's schema (a
 * collection without a schema takes anything), -EINVAL with the reason
 * otherwise: schema_validate_document's message ("due: expected date,
 * found string"; "colour: field not in schema"), or "collection \"Note\"
 * is not in the schema".  In Development Mode: the schema is extended so
 * it fits, and *extended says whether it was; -EINVAL, with the same kind
 * of message, only when the document contradicts the schema (a property
 * of another type, a required field missing) or a new collection is
 * needed and sync/config.json has no "database_name".  A null field the
 * schema does not name is accepted (it teaches no type).  -ENOMEM, -EIO
 * when the extension could not be saved; nothing changed then.
 */
int sync_schema_admit_document(sync_schema *schema, const char *collection,
                               const json_t *document, bool *extended,
                               char *message, size_t message_size);

/*
 * In Development Mode, make every field the subscriptions read queryable
 * (subscriptions in the stored form of sync_view_subscriptions_json), so
 * that sync_view_new then accepts them; a query that does not parse is
 * left for sync_view_new to refuse.  Outside Development Mode: nothing.
 * 0, -ENOMEM, -EIO.
 */
int sync_schema_admit_subscriptions(sync_schema *schema, const json_t *subscriptions,
                                    char *message, size_t message_size);

/* The schemas clients receive: {"<collection>": <schema>, ...} of every
 * collection that has one.  A new reference; NULL when out of memory.  It
 * shares the schemas with the app_config, which replaces them rather than
 * changing them, so it stays valid as they are extended. */
json_t *sync_schema_collections_json(const sync_schema *schema);

#endif

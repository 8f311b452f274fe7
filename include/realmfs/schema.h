/*
 * schema.h — App Services document schemas (a JSON Schema dialect with
 * bsonType), as found in data_sources/<service>/<db>/<collection>/schema.json
 * and in a mount's .realmfs/schema/<Collection>.json.
 *
 * Supported keywords: bsonType (a name or an array of names), type (the JSON
 * Schema alias), properties, required, items, title, description.  Known
 * bsonType names: objectId, string, int, long, double, decimal, number, bool,
 * date, uuid, binData, object, array, null, mixed.  Realm schemas list every
 * field, so a document field the schema does not name is an error, at every
 * level of embedded objects whose schema has "properties".
 */
#ifndef REALMFS_SCHEMA_H
#define REALMFS_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Check that a parsed JSON value is a schema this module understands.
 * 0, or -EINVAL with a message naming the schema path ("properties.tags.items:
 * unknown bsonType \"strng\""). */
int schema_check(const json_t *schema, char *message, size_t message_size);

/*
 * Validate a normalized document against a checked schema.  Where the
 * schema asks for a double (or decimal) and the document holds an integer,
 * the document is changed in place to hold that number as the asked type,
 * so "5" is stored as 5.0.  0, or -EINVAL with a message naming the field
 * path and the problem ("tags[2]: expected string, found long";
 * "owner: required field is missing"; "colour: field not in schema").
 */
int schema_validate_document(const json_t *schema, json_t *document,
                             char *message, size_t message_size);

#endif

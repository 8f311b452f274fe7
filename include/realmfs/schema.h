/*
 * schema.h — App Services document schemas (a JSON Schema dialect with
 * bsonType), as found in data_sources/<service>/<db>/<collection>/schema.json
 * and in a mount's .realmfs/schema/<Collection>.json.
 *
 * Supported keywords: bsonType (a name or an array of names), type (the JSON
 * Schema alias), properties, required, items, title, description.  Known
 * bsonType names: objectId, string, int, long, double, decimal, number, bool,
 * date, uuid, binData, object, array, null, mixed; type names: object,
 * array, string, number, boolean, null, integer (int or long).  Any other
 * keyword is an error rather than ignored, since ignoring it would accept
 * documents the server rejects.  A node without bsonType or type accepts
 * any value; properties, required and items apply to documents and arrays
 * whatever the node's type.
 *
 * Realm schemas list every field, so a document field the schema does not
 * name is an error, at every level of embedded objects whose schema has
 * "properties"; and a field that is not "required" may hold null whatever
 * its type (a Realm optional property).  Array elements may be null only
 * when their items schema accepts "null".
 *
 * Messages are "<path>: <problem>", the path being "(root)" for the top
 * level.  Both functions take message == NULL when message_size is 0.
 */
#ifndef REALMFS_SCHEMA_H
#define REALMFS_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Check that a parsed JSON value is a schema this module understands.
 * 0, or -EINVAL with a message naming the schema path ("properties.tags.items:
 * unknown bsonType \"strng\"").  Also rejected: bsonType and type in the
 * same node, and a required field that the node's properties, when given,
 * do not name. */
int schema_check(const json_t *schema, char *message, size_t message_size);

/*
 * Validate a normalized document against a schema that passed schema_check.
 * Where the schema asks for a double (or decimal) and the document holds an
 * integer, the document is changed in place to hold that number as the
 * asked type, so "5" is stored as 5.0:
 *
 *   integer   kept when the schema takes int (if it fits 32 bits), long or
 *             number; else made a double if it takes double; else a decimal
 *   double    kept when the schema takes double or number; else made a
 *             decimal, written with the fewest digits (at most 17) that
 *             read back as the same double ("0.1", "1e+300", "NaN")
 *
 * The document is changed only when it is valid.  0, -ENOMEM, or -EINVAL
 * with a message naming the field path and the problem ("tags[2]: expected
 * string, found long"; "owner: required field is missing"; "colour: field
 * not in schema"; "(root): not a document").  "expected" lists the schema's
 * own names ("expected string or null"); "found" uses value_type_name, so an
 * integer is "long".
 */
int schema_validate_document(const json_t *schema, json_t *document,
                             char *message, size_t message_size);

/*
 * Remove, in place, every field the schema does not name: at the top level
 * and in the embedded documents below it (array elements included), each
 * document whose schema node has "properties" loses the fields those
 * properties lack.  Values are not checked; schema_validate_document does
 * that.  This is how the sync server keeps fields a client cannot know out
 * of what it sends.  Returns the number of fields removed, or -EINVAL when
 * document is not a document.
 */
int schema_strip_unknown_fields(const json_t *schema, json_t *document);

#endif

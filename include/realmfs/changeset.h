/*
 * changeset.h — changesets and conflict resolution, shared by the sync
 * server and the sync client (docs/protocol.md, "Changesets and conflict
 * resolution", explains the rules with examples).
 *
 * A changeset is what one origin (a client file, or the server) did in one
 * write: a list of instructions on objects, each one of
 *
 *   create(collection, _id)              the object exists
 *   delete(collection, _id)              the object and all its fields go
 *   set(collection, _id, path, value)    one field gets a value
 *   unset(collection, _id, path)         one field goes
 *
 * A path is a dotted field path into embedded documents ("address.city").
 * Its field names are not empty, do not start with '$' and hold no NUL; the
 * first is never "_id".  A set's value is any normalized value (value.h)
 * except a document with fields: a document is sent as one set per leaf
 * field, so that embedded objects merge field by field.  The empty document
 * {} is a value of its own ("an embedded object with no fields").  Arrays,
 * arrays of documents included, are set whole.
 *
 * Nesting is bounded: a path has at most CHANGESET_MAX_DEPTH field names,
 * and its field names plus the nesting of the value (arrays, documents and
 * Extended JSON wrappers each count one level) are at most
 * CHANGESET_MAX_DEPTH, so no document built from instructions is deeper
 * than that.
 *
 * Every instruction has a clock: (the changeset's timestamp, its origin,
 * the instruction's index in the changeset), compared in that order.  An
 * origin must give its changesets strictly increasing timestamps, so that
 * no two instructions share a clock; the merge still converges when they do
 * (equal clocks are ordered by what they write).
 *
 * The merge keeps, per object, an object_state from which the visible
 * document follows.  Applying instructions to it is a join: any order,
 * repeats included, gives the same state and the same document, which is
 * the document one gets by replaying every instruction in clock order with
 * these meanings:
 *
 *   create   makes the object exist (empty) unless it already does
 *   delete   removes the object and all its fields
 *   set      when the object exists: every proper prefix of the path
 *            becomes an embedded document (a non-document value there is
 *            replaced by {}), then the last field takes the value
 *   unset    when the object exists: the same for the prefixes, then the
 *            last field is removed
 *   set and unset on an object that does not exist do nothing
 *
 * Field order of the visible document: "_id" first; then, in each
 * document, fields by the clock of the earliest instruction ever applied
 * at or under that field's path (across deletes), ties by name (bytes).
 *
 * Functions that take (message, message_size) write a NUL-terminated
 * message there on failure ("" on success); message may be NULL when
 * message_size is 0.
 */
#ifndef REALMFS_CHANGESET_H
#define REALMFS_CHANGESET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Most field names in a path, and most field names plus value nesting. */
#define CHANGESET_MAX_DEPTH 100

/* Most instructions in a changeset: each one's index is its clock's
 * sequence. */
#define CHANGESET_MAX_INSTRUCTIONS UINT32_MAX

typedef struct changeset_clock {
    int64_t timestamp;  /* ms since the epoch, >= 0 */
    uint64_t origin;    /* file identity of the origin, <= INT64_MAX */
    uint32_t sequence;  /* index of the instruction in its changeset */
} changeset_clock;

/* <0, 0 or >0 as a is before, equal to or after b: by timestamp, then
 * origin, then sequence. */
int changeset_clock_compare(const changeset_clock *a, const changeset_clock *b);

typedef enum changeset_operation {
    CHANGESET_CREATE,
    CHANGESET_DELETE,
    CHANGESET_SET,
    CHANGESET_UNSET,
} changeset_operation;

typedef struct changeset_instruction {
    changeset_operation operation;
    char *collection;
    json_t *id;     /* normalized string, int or ObjectId */
    char *path;     /* set and unset; NULL for create and delete */
    json_t *value;  /* normalized; set only, NULL otherwise */
} changeset_instruction;

/*
 * Zero-initialize, then fill origin, client_version and timestamp and add
 * instructions with changeset_append or changeset_diff.  The changeset
 * owns its instructions and everything they point to.
 */
typedef struct changeset {
    uint64_t origin;          /* <= INT64_MAX */
    uint64_t client_version;  /* <= INT64_MAX */
    int64_t timestamp;        /* ms since the epoch, >= 0 */
    changeset_instruction *instructions;
    size_t count;
    size_t capacity;
} changeset;

/* Free the instructions and zero the whole changeset. */
void changeset_clear(changeset *changeset);

/* The clock of instructions[index]: (timestamp, origin, index). */
changeset_clock changeset_instruction_clock(const changeset *changeset, size_t index);

/*
 * Add one instruction, copying collection, id, path and value.  path must
 * be NULL for create and delete, value NULL for all but set.  0, -ENOMEM,
 * -E2BIG past CHANGESET_MAX_INSTRUCTIONS, or -EINVAL with a message when
 * the instruction breaks a rule above ("path \"a..b\" has an empty field
 * name").  On failure the changeset is unchanged.
 */
int changeset_append(changeset *changeset, changeset_operation operation,
                     const char *collection, const json_t *id, const char *path,
                     const json_t *value, char *message, size_t message_size);

/*
 * As changeset_append, but the changeset takes the caller's references to
 * id and value instead of copies (a reader that has just built them saves
 * a copy and a free of each); they must be normalized and not shared with
 * anything that changes them.  Both references are released on failure.
 */
int changeset_append_taking(changeset *changeset, changeset_operation operation,
                            const char *collection, json_t *id, const char *path, json_t *value,
                            char *message, size_t message_size);

/*
 * The instructions that turn old_document into new_document, appended to
 * changeset:
 *
 *   old NULL, new NULL     nothing
 *   old NULL               create, then a set per leaf field in document
 *                          order
 *   new NULL               delete
 *   both                   for each field of new_document in its order: a
 *                          set of the new value when it differs (a new or
 *                          changed document is sent leaf by leaf; two
 *                          documents are compared field by field); then an
 *                          unset per field of old_document that new_document
 *                          lacks
 *
 * Values differ when their canonical text differs (1 and 1.0 differ, and
 * so do documents whose fields are in another order inside an array).
 * An embedded document with no fields is sent as a set of {}.  "_id" is
 * not a field here; where a document has one it must equal id.
 *
 * Applied at later clocks to a state that shows old_document, the result
 * is new_document; its field order too when new_document keeps the order
 * of the fields it shares with old_document and adds its new fields after
 * them, unless a new field was written before (it goes back to its old
 * place: see "Field order" above).
 *
 * 0, -ENOMEM, -E2BIG, or -EINVAL with a message: an _id that is not id, a
 * document nested deeper than CHANGESET_MAX_DEPTH, a field name that is
 * empty or holds '.' (it cannot be written as a path).  On failure the
 * changeset is unchanged.
 */
int changeset_diff(const char *collection, const json_t *id, const json_t *old_document,
                   const json_t *new_document, changeset *append_to, char *message,
                   size_t message_size);

/*
 * Receives the instructions of changeset_diff_visit and
 * changeset_replace_visit one at a time, each already checked against the
 * rules above (as changeset_append checks them).  collection, id, path
 * and value are borrowed for the call only.  0 to go on; anything else
 * stops the diff and is its result (a negative errno, with a message in
 * message when there is one to give).
 */
typedef int (*changeset_visitor)(void *context, changeset_operation operation,
                                 const char *collection, const json_t *id, const char *path,
                                 const json_t *value, char *message, size_t message_size);

/*
 * changeset_diff's instructions, in its order, given to visit instead of
 * appended: for writers that need them once and not as a changeset (a
 * download written straight into a frame, protocol.h).  Results as
 * changeset_diff's, or what visit returned; instructions visited before a
 * failure are not taken back.
 */
int changeset_diff_visit(const char *collection, const json_t *id, const json_t *old_document,
                         const json_t *new_document, changeset_visitor visit, void *visit_context,
                         char *message, size_t message_size);

/*
 * What makes a follower's copy of the object exactly document, whatever
 * it held: a delete, then (document not NULL) changeset_diff's
 * instructions from nothing to document.  The server sends objects this
 * way when it cannot know what the client holds (docs/protocol.md, "What
 * downloads carry").  Results as changeset_diff_visit's.
 */
int changeset_replace_visit(const char *collection, const json_t *id, const json_t *document,
                            changeset_visitor visit, void *visit_context, char *message,
                            size_t message_size);

/* changeset_replace_visit's instructions appended to append_to; on
 * failure append_to is unchanged.  Results as changeset_diff's. */
int changeset_replace(const char *collection, const json_t *id, const json_t *document,
                      changeset *append_to, char *message, size_t message_size);

/*
 * Replay one instruction, with the meanings listed at the top of this
 * file, on *document: a plain document (or NULL when the object does not
 * exist) that is not merged by clocks but follows instructions in the
 * order they come, as a client's mirror of the server's documents does
 * (docs/protocol.md).  create makes {"_id": id} when *document is NULL and
 * keeps it otherwise; delete frees it and sets NULL; set and unset change
 * it in place (a field that is replaced keeps its place; a new one goes
 * last).  The instruction must follow the rules above (as changeset_parse
 * and changeset_append check).  0 or -ENOMEM; after -ENOMEM the document
 * may hold part of a set's path.
 */
int changeset_replay(const changeset_instruction *instruction, json_t **document);

/*
 * Read the JSON form of a changeset (the wire and history format):
 *
 *   {"origin": 7, "client_version": 12, "timestamp": 1714560000000,
 *    "instructions": [
 *      {"op": "create", "collection": "Task", "id": {"$oid": "..."}},
 *      {"op": "set", "collection": "Task", "id": {"$oid": "..."},
 *       "path": "title", "value": "Buy milk"},
 *      {"op": "unset", "collection": "Task", "id": 5, "path": "notes"},
 *      {"op": "delete", "collection": "Task", "id": "a1"}]}
 *
 * ids and values are Extended JSON (ejson.h).  The input comes from the
 * network, so nothing is assumed: unknown members, unknown ops, missing or
 * mistyped members, numbers out of range, values nested deeper than the
 * rules allow, and every rule above are -EINVAL with a message that says
 * where ("instructions[2]: unknown op \"move\"").  -E2BIG past
 * CHANGESET_MAX_INSTRUCTIONS, -ENOMEM when out of memory.  *out is
 * overwritten (clear it first if it holds a changeset); on failure it is
 * left zeroed.
 */
int changeset_parse(const json_t *json, changeset *out, char *message, size_t message_size);

/* The JSON form above, with ids and values in Relaxed Extended JSON.  A
 * new reference; NULL when out of memory, when a collection or path is not
 * UTF-8, or when origin or client_version is beyond INT64_MAX or timestamp
 * is negative (JSON integers here are signed 64-bit). */
json_t *changeset_to_json(const changeset *changeset);

/*
 * The merge state of one object: its _id, the clock of its latest delete,
 * the clocks of the creates after that delete, and per path the latest
 * write (a value or "unset", with its clock) plus the clock of the earliest
 * write at or under the path (for field order).  The visible document:
 *
 *   - the object exists when some create is later than the latest delete;
 *     its current life starts at the earliest such create
 *   - only writes later than that start count
 *   - a path shows what the latest counting write at it, at a prefix of it
 *     or under it says: a write at a prefix hides it; a set at it gives its
 *     value; an unset at it removes it; a write under it makes it an
 *     embedded document (ties: the prefix, then the path itself, wins)
 */
typedef struct object_state object_state;

/* A state for an object that was never created.  id must be a normalized
 * string, int or ObjectId.  NULL when out of memory or id is not one. */
object_state *object_state_new(const json_t *id);
void object_state_free(object_state *state);

/* The object's _id (borrowed). */
const json_t *object_state_id(const object_state *state);

/*
 * Join one instruction, at its clock, into the state.  Applying the same
 * instruction again changes nothing, so after -ENOMEM (when the state may
 * or may not have taken it) the caller may simply apply it again.
 * 1 when the visible document changed (content or field order), 0 when
 * not, -EINVAL when the instruction's id is not the state's, the
 * instruction breaks a rule above, or the clock is out of range
 * (timestamp < 0, origin > INT64_MAX), -ENOMEM.
 */
int object_state_apply(object_state *state, const changeset_instruction *instruction,
                       const changeset_clock *clock);

/* As object_state_apply, without finding out whether the visible document
 * changed, which costs building it twice: for callers that compare
 * documents once after many instructions.  1 when the state took the
 * instruction, 0 when it already held it (or something later), or the
 * errors of object_state_apply. */
int object_state_join_instruction(object_state *state, const changeset_instruction *instruction,
                                  const changeset_clock *clock);

/* The visible document in *document (a new reference, "_id" first), or
 * NULL there when the object does not exist.  0 or -ENOMEM. */
int object_state_document(const object_state *state, json_t **document);

/*
 * The state as JSON, for the store, in a canonical form (states with the
 * same content give the same JSON, member for member, whatever order the
 * instructions came in); ids and values in Relaxed Extended JSON; clocks
 * as [timestamp, origin, sequence]:
 *
 *   {"id": 5, "deleted": [1714560000000, 7, 0],
 *    "created": [[1714560001000, 9, 0]],
 *    "fields": [{"path": "address", "first": [1714560001000, 9, 2]},
 *               {"path": "address.city", "first": [1714560001000, 9, 2],
 *                "last": [1714560001000, 9, 2], "value": "Paris"},
 *               {"path": "notes", "first": [1714560001000, 9, 3],
 *                "last": [1714560001000, 9, 3], "unset": true}]}
 *
 * "deleted" is left out when there was no delete.  A new reference, or
 * NULL when out of memory.
 */
json_t *object_state_to_json(const object_state *state);

/* Read what object_state_to_json wrote.  0 with *state set, -ENOMEM, or
 * -EINVAL with a message naming the member ("fields[3].last: a clock is
 * [timestamp, origin, sequence]"). */
int object_state_from_json(const json_t *json, object_state **state, char *message,
                           size_t message_size);

#endif

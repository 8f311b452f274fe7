/*
 * lmdb_support.h — plumbing shared by the LMDB-backed modules (the mount's
 * store, the sync server's store, users and API keys).  Private to
 * src/core: nothing outside those modules sees LMDB.
 *
 * Every name here starts with lmdb_ (LMDB's own names start with mdb_).
 *
 * The pattern every module follows: one public call = one lmdb_call, which
 * names the operation for error messages and holds the one transaction all
 * its steps run in.  Each step returns 0 or a negative errno; a failing
 * step records its message with lmdb_fail (or lmdb_fail_mdb for an mdb_*
 * return code) in the module's own per-thread buffer, and the call ends
 * with lmdb_call_finish, which commits on 0 and aborts otherwise.
 */
#ifndef REALMFS_LMDB_SUPPORT_H
#define REALMFS_LMDB_SUPPORT_H

#include <jansson.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    /* A collection name is 1..255 bytes without NUL. */
    LMDB_COLLECTION_NAME_MAX = 255,
    /* LMDB's maximum key size unless it was built with another one. */
    LMDB_KEY_CAPACITY = 511,
    LMDB_ERROR_MESSAGE_SIZE = 512,
};

/* A module's last-error message; each module keeps one per thread
 * (static _Thread_local), so one module's failure never overwrites
 * another's message. */
typedef struct lmdb_error_message {
    char text[LMDB_ERROR_MESSAGE_SIZE];
} lmdb_error_message;

typedef struct lmdb_call {
    lmdb_error_message *last_error; /* where lmdb_fail writes */
    const char *operation;          /* "put object": every message starts with it */
    const char *collection;         /* named after the operation unless NULL */
    MDB_txn *transaction;           /* the call's transaction, once begun */
} lmdb_call;

/* ---- Errors --------------------------------------------------------- */

/* Writes "<operation>: <message>", or "<operation> in collection "<name>":
 * <message>", to the call's last_error and returns error, so a failure
 * path reads "return lmdb_fail(...)".  Callers never pass secrets. */
__attribute__((format(printf, 3, 4)))
int lmdb_fail(const lmdb_call *call, int error, const char *format, ...);

/* The negative errno for an mdb_* return code: LMDB reports its own
 * conditions as negative MDB_* codes (MDB_NOTFOUND -> -ENOENT,
 * MDB_KEYEXIST -> -EEXIST, MDB_MAP_FULL -> -ENOSPC, others -EIO) and
 * system failures as positive errno values. */
int lmdb_errno(int code);

/* lmdb_fail with lmdb_errno(code) and a message naming the function
 * ("mdb_put") and LMDB's text for the code; a full map says so and how to
 * get more room. */
int lmdb_fail_mdb(const lmdb_call *call, int code, const char *mdb_function);

/* ---- Transactions --------------------------------------------------- */

/* Begins the call's transaction: read-only unless write.
 * lmdb_call_finish must follow whenever this succeeds. */
int lmdb_call_begin(lmdb_call *call, MDB_env *environment, bool write);

/* Commits when result is 0 and aborts otherwise, so that no path leaves a
 * transaction (and, for a write, LMDB's writer lock) behind.  Returns
 * result, or the commit's failure. */
int lmdb_call_finish(lmdb_call *call, int result);

/* ---- Opening -------------------------------------------------------- */

/* mkdir of one directory with mode; an existing one is fine. */
int lmdb_make_directory(const lmdb_call *call, const char *path, mode_t mode);

/* mkdir -p: path and its missing parents, each made with mode. */
int lmdb_make_directories(const lmdb_call *call, const char *path, mode_t mode);

typedef struct lmdb_environment_options {
    unsigned int max_databases;
    uint64_t map_size;   /* bytes */
    unsigned int flags;  /* mdb_env_open flags */
    mode_t mode;         /* of the files LMDB creates */
} lmdb_environment_options;

/* Creates and opens the environment in directory (which must exist) and
 * frees the reader slots of processes that died mid-read (their old pages
 * would otherwise never be reused).  *environment is NULL on failure. */
int lmdb_open_environment(const lmdb_call *call, const char *directory,
                          const lmdb_environment_options *options, MDB_env **environment);

/* The longest key the environment accepts, at most LMDB_KEY_CAPACITY. */
size_t lmdb_max_key_size(MDB_env *environment);

/* mdb_dbi_open in the call's transaction; the handle stays valid for every
 * later transaction once that transaction commits.  flags 0 (the database
 * must exist: -ENOENT "not a realmfs store (no "<name>" database)") or
 * MDB_CREATE. */
int lmdb_open_database(const lmdb_call *call, const char *name, unsigned int flags,
                       MDB_dbi *database);

/* Data written in another layout must not be misread: compares the
 * "format" number in meta with format_version.  When it is missing, a new
 * store (may_create) gets format_version, otherwise -ENOENT "not a realmfs
 * store"; another version is -ENOTSUP. */
int lmdb_check_format(const lmdb_call *call, MDB_dbi meta, uint64_t format_version,
                      bool may_create);

/* The size of the environment's data file on disk. */
int lmdb_data_file_bytes(const lmdb_call *call, MDB_env *environment, uint64_t *bytes);

/* ---- Records -------------------------------------------------------- */

/* A key (or value) that is the bytes of a NUL-terminated text, without
 * the NUL. */
MDB_val lmdb_text_value(const char *text);

/* A u64 kept in native byte order (LMDB files are not portable across
 * architectures anyway).  get: 1 and *value when the record exists, 0 and
 * *value = 0 when not, -EIO when it is not 8 bytes. */
int lmdb_get_number(const lmdb_call *call, MDB_dbi database, const char *name, uint64_t *value);
int lmdb_put_number(const lmdb_call *call, MDB_dbi database, const char *name, uint64_t value);

/* A key of 8 big-endian bytes, so that LMDB's byte order is numeric order
 * (history versions, file identities). */
typedef struct lmdb_number_key {
    uint8_t bytes[8];
} lmdb_number_key;

MDB_val lmdb_number_key_value(lmdb_number_key *key, uint64_t number);
/* -EIO when key is not 8 bytes. */
int lmdb_number_key_decode(const lmdb_call *call, const MDB_val *key, uint64_t *number);

/* Records kept as compact JSON objects, readable with mdb_dump.  parse:
 * *record a new reference, -EIO for a damaged record (not a JSON object). */
int lmdb_parse_json_record(const lmdb_call *call, const MDB_val *value, json_t **record);
/* flags: 0 to replace, MDB_NOOVERWRITE to insert (-EEXIST when present). */
int lmdb_put_json_record(const lmdb_call *call, MDB_dbi database, const MDB_val *key,
                         const json_t *record, unsigned int flags);

/* Ends a cursor walk: closes the cursor, then returns result when it is
 * not 0 (a step failed or a visit stopped the walk); otherwise 0 when code,
 * the walk's last mdb_* return, is 0 (stopped on purpose) or MDB_NOTFOUND
 * (no more records), else the failure of mdb_function. */
int lmdb_cursor_finish(const lmdb_call *call, MDB_cursor *cursor, int result, int code,
                       const char *mdb_function);

/* Visits, in byte order, the keys of a database keyed by collection name
 * (each checked to be one); a non-zero return from visit stops the walk
 * and is returned. */
int lmdb_for_each_name(const lmdb_call *call, MDB_dbi database,
                       int (*visit)(const char *name, void *context), void *context);

/* ---- Object keys ---------------------------------------------------- */

/*
 * The key of an object, (collection, _id): the collection name, 0x00, then
 * a type tag and bytes chosen so that LMDB's default key order (memcmp) is
 * the order store.h documents for ids:
 *
 *   0x01  int       8 bytes big-endian, sign bit flipped
 *   0x02  ObjectId  its 12 bytes
 *   0x03  string    its bytes (may contain NUL)
 *
 * Collection names never contain NUL, so "Task\0" starts a key range that
 * no object of "TaskList" can fall into.  With size ==
 * collection_prefix_size it is the first possible key of its collection;
 * bytes then hold the collection name as a C string.
 */
typedef struct lmdb_object_key {
    size_t size;
    size_t collection_prefix_size; /* the name and its 0x00 */
    uint8_t bytes[LMDB_KEY_CAPACITY];
} lmdb_object_key;

/* 0, or -EINVAL (empty) / -ENAMETOOLONG with a message. */
int lmdb_check_collection_name(const lmdb_call *call, const char *collection);

/* The first key of a collection whose name passed
 * lmdb_check_collection_name. */
void lmdb_object_key_start(lmdb_object_key *key, const char *collection);

/* Appends an id (a normalized string, int or ObjectId; otherwise -EINVAL)
 * to a collection's first key.  -ENAMETOOLONG when the key would exceed
 * max_key_size. */
int lmdb_object_key_append_id(const lmdb_call *call, lmdb_object_key *key, const json_t *id,
                              size_t max_key_size);

/* lmdb_check_collection_name, lmdb_object_key_start and
 * lmdb_object_key_append_id. */
int lmdb_object_key_build(const lmdb_call *call, const char *collection, const json_t *id,
                          size_t max_key_size, lmdb_object_key *key);

MDB_val lmdb_object_key_value(const lmdb_object_key *key);

/* Whether a stored key belongs to the collection key starts with. */
bool lmdb_object_key_in_collection(const MDB_val *key, const lmdb_object_key *collection_key);
bool lmdb_object_key_equals(const MDB_val *key, const lmdb_object_key *other);

/* The id from the bytes of a key after its collection prefix, a new
 * reference in *id.  -EIO for bytes no id encodes to, -ENOMEM. */
int lmdb_object_key_decode_id(const lmdb_call *call, const uint8_t *bytes, size_t size,
                              json_t **id);

/* A step of lmdb_for_each_object; a non-zero return ends the walk and
 * becomes its result. */
typedef int lmdb_object_step(const lmdb_call *call, const MDB_val *key, const MDB_val *value,
                             void *state);

/* Walks the records of database in key order from the key from, while
 * they belong to from's collection. */
int lmdb_for_each_object(const lmdb_call *call, MDB_dbi database, const lmdb_object_key *from,
                         lmdb_object_step *step, void *state);

#endif

/*
 * store.h — the object store behind a realm: collections of objects keyed
 * by _id, each kept as its canonical Extended JSON text (ejson.h), plus one
 * optional App Services schema per collection.
 *
 * This header is the storage interface; the embedded default implements it
 * on LMDB (store_lmdb.c) in a data directory.  Nothing outside the store
 * touches LMDB, so another backend can implement the same contract.
 *
 * Contract:
 *  - Every function returns 0 (or a documented non-negative value) on
 *    success and a negative errno on failure; store_last_error() then holds
 *    a message for the calling thread that names what failed.
 *  - A successful write is committed: it survives a crash of the process
 *    (LMDB writes through the OS page cache on commit).  store_sync() makes
 *    every committed write durable on disk.
 *  - Readers never see a half-written object: each call reads one
 *    consistent snapshot.  Any thread may call any function; writes are
 *    serialized by the store.  Several processes may open the same
 *    directory (one read-write, others read-only).
 *  - Object ids are normalized values (value.h) of type string, int or
 *    ObjectId; other types give -EINVAL.  Objects of a collection are
 *    ordered by id: ints (numerically), then ObjectIds, then strings (by
 *    bytes).  A collection name and a string id together may not exceed
 *    509 bytes (LMDB's key limit); a longer id gives -ENAMETOOLONG.
 *  - Collection names are 1..255 bytes without NUL; "" gives -EINVAL, a
 *    longer name -ENAMETOOLONG.
 *  - Any write on a store opened read_only gives -EROFS.  A write that
 *    does not fit in map_size gives -ENOSPC and changes nothing.
 */
#ifndef REALMFS_STORE_H
#define REALMFS_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

typedef struct store_options {
    bool read_only;
    uint64_t map_size; /* bytes the store may grow to; 0 = 64 GiB */
} store_options;

typedef struct store_object_info {
    size_t size;          /* bytes of the canonical text */
    int64_t modified_ns;  /* last change, ns since the epoch */
    uint64_t version;     /* store-wide counter value at the last change */
} store_object_info;

typedef struct store_statistics {
    uint64_t file_bytes;  /* size of the store's files on disk */
    uint64_t used_bytes;  /* bytes in pages in use */
} store_statistics;

/* Message for the last failure in the calling thread ("" if none). */
const char *store_last_error(void);

/* Open (creating it and missing parent directories, unless read_only) the
 * store in directory.  options may be NULL for the defaults.  -ENOENT when
 * read_only and there is no store; -ENOTSUP for a store in a format this
 * build cannot read.  *out is NULL on failure. */
int store_open(const char *directory, const store_options *options, store **out);
/* Accepts NULL.  Every call using the store must have returned. */
void store_close(store *store);
/* Flush every committed write to disk (what fsync() promises).  Does
 * nothing on a read-only store. */
int store_sync(store *store);
int store_get_statistics(store *store, store_statistics *statistics);

/* Collections.  create: -EEXIST if present; drop: -ENOENT, -ENOTEMPTY while
 * it holds objects.  has: 1 or 0. */
int store_create_collection(store *store, const char *name);
int store_drop_collection(store *store, const char *name);
int store_has_collection(store *store, const char *name);
/* Visit every collection name in byte order; a non-zero return from visit
 * stops the walk and is returned. */
int store_list_collections(store *store,
                           int (*visit)(const char *name, void *context),
                           void *context);
int store_count_objects(store *store, const char *collection, uint64_t *count);

/* Objects.  -ENOENT when the collection or object does not exist.  Every
 * put, delete and rename takes the next value of the store-wide version
 * counter, so versions only grow. */
int store_get_object_info(store *store, const char *collection,
                          const json_t *id, store_object_info *info);
/* *text is malloc'd (NUL-terminated for convenience); caller frees. */
int store_get_object(store *store, const char *collection, const json_t *id,
                     char **text, store_object_info *info);
/* Create or replace; the collection must exist.  info (may be NULL)
 * receives the new size, time and version. */
int store_put_object(store *store, const char *collection, const json_t *id,
                     const char *text, size_t size, int64_t modified_ns,
                     store_object_info *info);
int store_delete_object(store *store, const char *collection, const json_t *id);
/* In one transaction: delete old_id and create or replace new_id. */
int store_rename_object(store *store, const char *collection,
                        const json_t *old_id, const json_t *new_id,
                        const char *text, size_t size, int64_t modified_ns,
                        store_object_info *info);

/* One object during a scan.  Everything in it is valid only during the
 * visit. */
typedef struct store_object_view {
    const json_t *id;     /* borrowed; NULL in store_scan_object_texts */
    const char *text;     /* NOT NUL-terminated */
    store_object_info info;
    /* The id as the store keeps it; read it through store_object_view_id. */
    const uint8_t *stored_id;
    size_t stored_id_size;
} store_object_view;

/*
 * Visit the objects of a collection in id order, starting at start (or at
 * the first object when start is NULL); with skip_start, an object whose id
 * equals start is skipped (resuming after the last one seen).  All visits
 * see one snapshot.  visit may read the store but must not write to it;
 * a non-zero return stops the walk and is returned.  -ENOENT when the
 * collection does not exist.
 */
int store_scan_objects(store *store, const char *collection,
                       const json_t *start, bool skip_start,
                       int (*visit)(const store_object_view *object, void *context),
                       void *context);

/* As store_scan_objects, but object->id is NULL: a visitor that needs an
 * object's id asks store_object_view_id.  Decoding only the ids that are
 * used saves allocations on every object a query skips. */
int store_scan_object_texts(store *store, const char *collection,
                            const json_t *start, bool skip_start,
                            int (*visit)(const store_object_view *object, void *context),
                            void *context);

/* The id of the object being visited (by either scan) as a new reference
 * in *id.  -ENOMEM, or -EIO for a corrupt key. */
int store_object_view_id(const store_object_view *object, json_t **id);

/* Schemas: the App Services schema text of a collection, independent of
 * whether the collection exists.  get: -ENOENT when none; *text malloc'd
 * and NUL-terminated, size may be NULL.  delete: -ENOENT when none.  list
 * visits collection names in byte order, as store_list_collections. */
int store_get_schema(store *store, const char *collection, char **text, size_t *size);
int store_put_schema(store *store, const char *collection, const char *text, size_t size);
int store_delete_schema(store *store, const char *collection);
int store_list_schemas(store *store,
                       int (*visit)(const char *collection, void *context),
                       void *context);

#endif

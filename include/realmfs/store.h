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

#include "realmfs/changeset.h"
#include "realmfs/protocol.h"

typedef struct store store;

typedef struct store_options {
    bool read_only;
    uint64_t map_size; /* bytes the store may grow to; 0 = 64 GiB */
    /* Keep sync state ("Sync state" below).  A store once opened synced
     * stays synced: later opens with synced false still queue changes,
     * so that no local write is ever left out of the outbox. */
    bool synced;
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
 * build cannot read.  A store an earlier build wrote is upgraded when
 * opened for writing; read_only, it gives -ENOTSUP until then.  *out is
 * NULL on failure. */
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
/* Each collection keeps its count, changed in the transaction of every
 * write: counting costs no walk. */
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

/* ------------------------------------------------------------------
 * Sync state (stores opened with store_options.synced; every function
 * below gives -EINVAL on a store that is not synced)
 *
 * A synced store keeps, in the same LMDB environment as the objects:
 *
 *   mirror         the server's document per object in view, as of the
 *                  last applied download (docs/protocol.md, "What
 *                  downloads carry")
 *   outbox         the local changesets not yet acknowledged, by client
 *                  version (1, 2, ...), in the JSON form of changeset.h
 *   subscriptions  (collection, name) -> RQL text, with a version bumped
 *                  on every change of the set
 *   access         the objects the server said the user may not write
 *                  (docs/protocol.md, "Access")
 *   progress       the numbers of store_sync_progress
 *
 * Queuing: every store_put_object, store_delete_object and
 * store_rename_object on a synced store also appends, in the same
 * transaction, the changeset turning the old visible document into the
 * new one (changeset_diff); a write that changes no field appends
 * nothing.  So a successful write is committed and queued at once.  A
 * rename appends one changeset: delete of the old id, create of the new.
 * Changeset timestamps strictly increase per store (the wall clock in ms,
 * or the previous timestamp + 1 when the clock has not moved on).
 *
 * Visible documents: the visible text of an object is always the mirror
 * document with the instructions of the outbox changesets that touch it
 * replayed on top (changeset_replay, in client-version order), so a
 * remote change never hides a local change that is not acknowledged yet.
 * ------------------------------------------------------------------ */

/* How long a held delete waits in the outbox before it may be uploaded,
 * giving an editor's save cycle time to write the object again. */
#define STORE_HELD_DELETE_MS 2000

typedef struct store_sync_progress {
    uint64_t file_identity;                    /* 0 until the server allocated one */
    uint64_t last_server_version;              /* download progress, for bind */
    uint64_t last_acknowledged_client_version; /* bind.last_integrated_client_version */
    uint64_t next_client_version;              /* the version the next local changeset gets */
    uint64_t subscriptions_version;            /* 0 while no subscription was ever written */
    uint64_t accepted_query_version;           /* the latest set the server accepted */
    uint64_t refused_query_version;            /* the latest set the server refused, or 0 */
    uint64_t outbox_changesets;                /* changesets waiting for an acknowledgement */
    uint64_t read_only_objects;                /* objects the user may not write */
    uint64_t rejected_writes;                  /* store_revert_refused_write calls, ever */
    bool client_reset_pending;                 /* store_begin_client_reset, not completed yet */
    bool server_schemas;                       /* the schemas are the server's
                                                  (store_set_server_schemas) */
    bool development_mode;                     /* ... and the server lets clients extend them */
    /* The server's message for refused_query_version; "" when
     * accepted_query_version is later (the error was fixed). */
    char query_error[512];
} store_sync_progress;

int store_get_sync_progress(store *store, store_sync_progress *progress);

/* Keep the identity the server allocated (ident).  -EINVAL for 0 or
 * above INT64_MAX; -EEXIST when the store has another identity already. */
int store_set_file_identity(store *store, uint64_t identity);

/*
 * Record the server's answer to the subscription set of query_version:
 * accepted (its bootstrap was applied; store_apply_download does this by
 * itself for a last_in_batch download of a newer query_version) or
 * refused with the server's message (query_error, copied, truncated).
 * Versions only grow: an answer older than the one recorded is ignored.
 */
int store_set_query_result(store *store, uint64_t query_version, bool accepted,
                           const char *message);

/*
 * Visit the outbox changesets with client_version > after_client_version
 * in client-version order, at most max_changesets of them (0: no limit),
 * with origin set to the file identity.  The walk stops before a held
 * delete that is younger than STORE_HELD_DELETE_MS at now_ms (ms since
 * the epoch, CLOCK_REALTIME as the store's timestamps), so that nothing
 * after it is uploaded before it.  The changeset is valid only during the
 * visit (take what you keep: the visitor may move its instructions out
 * and clear it).  visit must not write to the store.  A non-zero return
 * stops the walk and is returned; else the number of changesets visited.
 * -EAGAIN while the store has no file identity.
 */
int store_scan_outbox(store *store, uint64_t after_client_version, size_t max_changesets,
                      int64_t now_ms,
                      int (*visit)(const changeset *changeset, void *context),
                      void *context);

/*
 * As store_delete_object, but the queued delete is "held": when the same
 * object is written again within STORE_HELD_DELETE_MS, while the held
 * delete is still the newest outbox changeset for the object, the two
 * become ONE changeset, the diff from the deleted document to the new one
 * (an editor's save cycle reaches the server as one update).  On a store
 * that is not synced it is store_delete_object.
 */
int store_delete_object_held(store *store, const char *collection, const json_t *id);

/*
 * Subscriptions: named RQL predicates per collection.  The collection
 * need not exist; collection names follow the rules above; a name is 1 to
 * 255 bytes without NUL and '/'; query is NUL-terminated, not empty
 * (-EINVAL), and not checked here (the caller parses it).  Every call
 * that changes the set increments subscriptions_version; a call that
 * changes nothing (same query, rename to the same name) does not.
 *   put:     create or replace
 *   delete:  -ENOENT when there is none
 *   rename:  -ENOENT when old_name has none; replaces new_name's
 *   get:     *query malloc'd, NUL-terminated; -ENOENT when none
 *   list:    in byte order of (collection, name), so each collection's
 *            subscriptions come together; a non-zero return from visit
 *            stops the walk and is returned
 */
int store_put_subscription(store *store, const char *collection, const char *name,
                           const char *query);
int store_delete_subscription(store *store, const char *collection, const char *name);
int store_rename_subscription(store *store, const char *collection, const char *old_name,
                              const char *new_name);
int store_get_subscription(store *store, const char *collection, const char *name,
                           char **query);
int store_list_subscriptions(store *store,
                             int (*visit)(const char *collection, const char *name,
                                          const char *query, void *context),
                             void *context);

/* A new subscriptions_version for the same set, in *version: for sending
 * the set again after a connection was lost during its bootstrap (the
 * server wants a greater query_version each time). */
int store_bump_subscriptions_version(store *store, uint64_t *version);

/* An object a download touched.  existed/exists: whether it was visible
 * before and is after. */
typedef struct store_download_change {
    char *collection;
    json_t *id;
    bool existed;
    bool exists;
    /* Only from the download that completes a client reset: the local
     * text of a change the reset could not re-apply (the object then
     * leaves the mount), for the caller to keep where the user finds it;
     * NULL otherwise. */
    char *lost_text;
} store_download_change;

/*
 * Apply one download message, in one transaction:
 *
 *  - last_in_batch false: the message is staged; no visible text changes.
 *  - last_in_batch true: the staged messages, then this one: the mirror
 *    follows their changesets (changeset_replay); outbox changesets up to
 *    last_integrated_client_version are dropped; every object they or the
 *    download touched becomes mirror + pending outbox instructions (its
 *    canonical pretty text, or deleted; a collection that does not exist
 *    is created); last_server_version, the acknowledged client version
 *    and the accepted query version advance.
 *  - either way, access (docs/protocol.md, "Access"): an object a delete
 *    instruction of the message removes becomes writable, then the
 *    message's access entries mark objects read-only or writable
 *    (store_object_is_read_only).
 *
 * *changes (malloc'd, free with store_free_download_changes) lists the
 * objects whose visible text changed, and the visible objects whose
 * access changed (existed and exists true), in no particular order, so
 * the caller can invalidate caches.  -EINVAL when the store has no file
 * identity or the download goes backwards (a server_version below
 * last_server_version); -EPROTO (with a message) when a changeset cannot
 * apply (a text the mirror cannot take).  On failure nothing changes.
 */
int store_apply_download(store *store, const protocol_download_body *download,
                         store_download_change **changes, size_t *change_count);
void store_free_download_changes(store_download_change *changes, size_t change_count);

/* Forget staged download messages: call when (re)binding, since the
 * server starts a cut batch again from last_server_version. */
int store_discard_staged_downloads(store *store);

/*
 * Client reset (docs/sync.md, "Client reset"), for when the server cannot
 * continue the file's history (client_reset_required, bad_file_identity).
 *
 * store_begin_client_reset, in one transaction: forgets the file identity,
 * the mirror, the staged downloads, last_server_version, the acknowledged
 * client version and the server's answers to the subscription set (so the
 * set goes to the new file; a store that never had one gets the empty
 * set, version 1), and sets the outbox aside: it stays, visible documents
 * do not change, and local writes keep queuing, but store_scan_outbox
 * gives -EAGAIN until the reset completes.  Calling it again before then
 * starts over with the same set-aside outbox.
 *
 * It also forgets which objects are read-only: the new file's downloads
 * say it again.  *changes lists the visible objects that were read-only
 * (existed and exists both true, their text unchanged), for the caller
 * to drop what the kernel caches of their mode; free them with
 * store_free_download_changes.
 *
 * The reset completes in store_apply_download, with the first
 * last_in_batch download whose query_version reaches
 * subscriptions_version (the bootstrap of the current set on the new
 * file): its documents are the fresh mirror, and every object is shown as
 * the fresh mirror plus the set-aside changes replayed on it, which are
 * queued again as one new changeset per object (the diff from the fresh
 * document; only what the user changed goes up, so newer values of other
 * fields on the server stay).  A set-aside edit of an object the fresh
 * mirror lacks (deleted on the server, or no longer selected), or a new
 * object of a collection no subscription names, cannot be re-applied: the
 * object leaves the mount and its change in *changes carries the local
 * text in lost_text.  Changes the server had acknowledged before the
 * reset are not sent again: the server's state after the reset is the
 * one the mount follows.
 */
int store_begin_client_reset(store *store, store_download_change **changes,
                             size_t *change_count);

/* 1 when the server said the user may not write the object (store_
 * apply_download), 0 when it may, or -errno.  Whether the object exists
 * does not matter. */
int store_object_is_read_only(store *store, const char *collection, const json_t *id);

/*
 * A compensating write (docs/protocol.md, "error"): the server refused
 * what the outbox changesets up to client_version do to the object, and
 * integrated their other instructions.  In one transaction, the object's
 * instructions leave those changesets (a changeset left empty leaves the
 * outbox), the object shows the mirror with the changes still pending on
 * top (or disappears when that leaves nothing), and rejected_writes grows
 * by one.  The mirror needs no change: the server's document is what the
 * downloads bring (the refused write never reached it).  *rejected_text
 * (malloc'd, NULL when the object was not visible) gets the visible text
 * from before; *changes lists the object when its visible text changed,
 * as store_apply_download does.  On failure nothing changes.  Returns 1,
 * changing nothing, when no outbox changeset up to client_version touches
 * the object: the mount handled this error before, and the server sent it
 * again because it could not know (a connection that dropped before the
 * acknowledgement arrived); the caller should not report it twice.
 */
int store_revert_refused_write(store *store, const char *collection, const json_t *id,
                               uint64_t client_version, char **rejected_text,
                               store_download_change **changes, size_t *change_count);

/*
 * The server's schemas (a schema message): every schema of the store is
 * replaced by collections ({"<collection>": <App Services schema>, ...},
 * each one that schema_check accepted), and progress.server_schemas and
 * development_mode are set, in one transaction.  -EINVAL when collections
 * is not an object or names an invalid collection.
 */
int store_set_server_schemas(store *store, const json_t *collections, bool development_mode);

#endif

/*
 * sync_store.h — the sync server's authoritative store: the merged objects,
 * their merge states, the history of integrated changesets by server
 * version, and the client files (identities, upload progress, accepted
 * subscription sets).
 *
 * This header is the storage interface of realmfs-server.  The embedded
 * default implements it on LMDB (sync_store_lmdb.c) in <data>/sync; a
 * PostgreSQL backend shared by several server nodes is to implement the
 * same contract, so nothing here exposes LMDB, and every operation that
 * must be atomic is one call.
 *
 * Contract:
 *  - Every function returns 0 (or a documented non-negative value) on
 *    success and a negative errno on failure; sync_store_last_error() then
 *    holds a message for the calling thread naming what failed.
 *  - A successful write is committed: it survives a crash of the process
 *    (kill -9).  sync_store_sync() makes every committed write durable on
 *    disk (power loss).
 *  - Objects are keyed by (collection, _id), _id a normalized string, int
 *    or ObjectId (value.h); the order within a collection is the one of
 *    store.h (ints, then ObjectIds, then strings by bytes).
 *  - Server versions count integrated changesets: the first gets 1, each
 *    next one the next integer.  0 means "nothing integrated yet".
 *  - One thread at a time may use a sync_store, except snapshots: several
 *    snapshots may be open at once, alongside writes, in that thread.
 *    (The server runs one event-loop thread; the import command is a
 *    process of its own.)
 */
#ifndef REALMFS_SYNC_STORE_H
#define REALMFS_SYNC_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realmfs/changeset.h"

typedef struct sync_store sync_store;

/* Message for the last failure in the calling thread ("" if none). */
const char *sync_store_last_error(void);

/* Open, creating it if missing, the store in <data_directory>/sync (and
 * the missing directories above it, readable by the owner only).
 * map_size 0 means 64 GiB; a write beyond it is -ENOSPC.  -ENOTSUP for a
 * store in a format this build cannot read.  *out is NULL on failure. */
int sync_store_open(const char *data_directory, uint64_t map_size, sync_store **out);
/* Accepts NULL.  Every snapshot must have been ended. */
void sync_store_close(sync_store *store);
/* Flush every committed write to disk. */
int sync_store_sync(sync_store *store);

typedef struct sync_store_statistics {
    uint64_t server_version;      /* the latest server version */
    uint64_t oldest_history;      /* the first version still in the history;
                                     server_version + 1 when it is empty */
    uint64_t history_changesets;  /* changesets in the history */
    uint64_t objects;             /* objects that exist, all collections */
    uint64_t files;               /* client files ever allocated */
    uint64_t file_bytes;          /* size of the store's files on disk */
} sync_store_statistics;

int sync_store_get_statistics(sync_store *store, sync_store_statistics *statistics);

/* ---- Client files ------------------------------------------------------ */

/* What the server knows of one client file.  Clear with
 * sync_store_file_clear (safe on a zeroed struct). */
typedef struct sync_store_file {
    uint64_t identity;                       /* >= 1 */
    char *user_id;                           /* the user it was allocated to */
    uint64_t last_integrated_client_version; /* 0: nothing integrated */
    uint64_t query_version;                  /* the accepted set; 0: none yet */
    json_t *subscriptions;                   /* the accepted set, as in a query
                                                message: {"Task": [{"name", "query"}]};
                                                {} when none */
    int64_t last_seen_ms;                    /* last bind or upload */
} sync_store_file;

void sync_store_file_clear(sync_store_file *file);

/* Allocate the next file identity (never 0, never reused) for a user. */
int sync_store_create_file(sync_store *store, const char *user_id, int64_t now_ms,
                           uint64_t *identity);
/* -ENOENT when the identity was never allocated. */
int sync_store_get_file(sync_store *store, uint64_t identity, sync_store_file *file);
/* Record an accepted subscription set (a copy of subscriptions is kept). */
int sync_store_set_file_query(sync_store *store, uint64_t identity, uint64_t query_version,
                              const json_t *subscriptions);
int sync_store_touch_file(sync_store *store, uint64_t identity, int64_t now_ms);

/* ---- Integration ------------------------------------------------------- */

/* One object whose visible document a changeset changed (content or field
 * order).  Documents are normalized, "_id" first; NULL when the object did
 * not exist before / does not exist after. */
typedef struct sync_store_object_change {
    char *collection;
    json_t *id;
    json_t *old_document;
    json_t *new_document;
} sync_store_object_change;

/* The outcome of integrating one changeset.  Clear with
 * sync_store_integration_clear (safe on a zeroed struct). */
typedef struct sync_store_integration {
    bool skipped;             /* already integrated: client_version not above
                                 the file's last integrated one */
    uint64_t server_version;  /* the version it got; 0 when skipped */
    sync_store_object_change *changes; /* in order of first touch */
    size_t change_count;
} sync_store_integration;

void sync_store_integration_clear(sync_store_integration *integration);

/*
 * Integrate changesets, in order, in one transaction: all or none.  For
 * each one whose origin is a file (origin >= 1): -ENOENT when the file was
 * never allocated; skipped when its client_version is not above the
 * file's last integrated client version, which otherwise becomes it.
 * Changesets with origin 0 (made by the server: imports, reverts) are
 * never skipped.  Each changeset that is not skipped gets the next server
 * version, is joined into the merge states of the objects it touches
 * (object_state_apply), updates their visible documents, and goes into the
 * history with now_ms as its integration time.  results[i] receives the
 * outcome of changesets[i] (results must hold count entries; they are
 * overwritten).  On failure nothing is written and every result is
 * cleared.
 */
int sync_store_integrate(sync_store *store, const changeset *changesets, size_t count,
                         int64_t now_ms, sync_store_integration *results);

/* ---- Compensating-write notices ----------------------------------------- */

/*
 * A compensating write sent to a client (docs/protocol.md, "error"), kept
 * until the client shows it received it.  The error goes out before the
 * download that acknowledges the upload, on the same connection; a client
 * whose download progress (bind.last_server_version) has reached that
 * download has therefore seen the error, and one whose progress has not
 * may not have: the server sends it again.  Clear with
 * sync_store_notice_clear (safe on a zeroed struct).
 */
typedef struct sync_store_notice {
    uint64_t file_identity;
    uint64_t client_version;  /* of the changeset whose write was refused */
    char *collection;
    json_t *id;
    char *reason;
    json_t *server_document;  /* as the user may read it; NULL: none */
    uint64_t server_version;  /* of the download that acknowledges the
                                 upload: the store's server version once
                                 the upload is integrated */
} sync_store_notice;

void sync_store_notice_clear(sync_store_notice *notice);
/* Clears each of count notices, then frees the array; accepts NULL. */
void sync_store_notices_free(sync_store_notice *notices, size_t count);

/*
 * sync_store_integrate, and in the same transaction the notices of the
 * writes the server refused in these changesets.  Their server_version
 * is ignored: each gets the store's server version after the
 * integration, so at least one changeset must integrate (-EINVAL
 * otherwise: the notices would never be sent again).  A notice's file
 * must exist (-ENOENT).
 */
int sync_store_integrate_upload(sync_store *store, const changeset *changesets, size_t count,
                                const sync_store_notice *notices, size_t notice_count,
                                int64_t now_ms, sync_store_integration *results);

/*
 * At a bind of a file whose download progress is last_server_version:
 * the notices of the file it may not have seen (server_version above
 * last_server_version) in *notices, in the order they were stored
 * (client version, then the order of the upload), *count of them, to
 * free with sync_store_notices_free; the others are deleted, in the same
 * transaction.  A file that has none gets NULL and 0.
 */
int sync_store_take_unseen_notices(sync_store *store, uint64_t file_identity,
                                   uint64_t last_server_version, sync_store_notice **notices,
                                   size_t *count);

/* The visible document of one object, a new reference in *document (the
 * latest committed state); -ENOENT when it does not exist. */
int sync_store_get_document(sync_store *store, const char *collection, const json_t *id,
                            json_t **document);

/* The merge state of one object (the latest committed one), new in
 * *state, for the caller to free: an empty state (object_state_new) when
 * nothing was ever integrated for it.  Lets the server work out what a
 * changeset would do before it integrates it. */
int sync_store_get_object_state(sync_store *store, const char *collection, const json_t *id,
                                object_state **state);

/* ---- History ----------------------------------------------------------- */

/*
 * Visit, in server-version order, every changeset in the history with a
 * server version above after_version.  -ESTALE (and no visit) when the
 * history no longer holds all of them (after_version + 1 < oldest_history).
 * The changeset is valid only during the visit; a non-zero return from
 * visit stops the walk and is returned.
 */
int sync_store_scan_history(sync_store *store, uint64_t after_version,
                            int (*visit)(uint64_t server_version, const changeset *changeset,
                                         void *context),
                            void *context);

/*
 * Forget history integrated before cutoff_ms, the merge states of
 * objects that do not exist (deleted, or only written to without a
 * create) and whose latest clock is before it (their tombstones), and the
 * notices whose server_version is no longer in the history: a client
 * whose progress is older is reset anyway (sync_store_scan_history says
 * -ESTALE), and any other has seen them.  Returns the number of changesets removed (at most
 * INT_MAX is reported).
 */
int sync_store_trim_history(sync_store *store, int64_t cutoff_ms);

/* ---- Snapshots: consistent reads across many calls (bootstraps) -------- */

typedef struct sync_store_snapshot sync_store_snapshot;

/* Begin a read-only view of the store as it is now; writes after this do
 * not show in it.  Keep it short-lived: it holds back the reuse of pages. */
int sync_store_snapshot_begin(sync_store *store, sync_store_snapshot **out);
void sync_store_snapshot_end(sync_store_snapshot *snapshot);
/* The server version the snapshot shows. */
uint64_t sync_store_snapshot_version(const sync_store_snapshot *snapshot);

/* One existing object during a scan; valid only during the visit. */
typedef struct sync_store_document_view {
    const json_t *id;     /* borrowed */
    const char *text;     /* canonical Extended JSON text in the one-line form
                             of ejson_format_line, NOT NUL-terminated */
    size_t size;
} sync_store_document_view;

/*
 * Visit the existing objects of a collection in id order, starting after
 * after_id (from the first when NULL), so that a bootstrap resumes a
 * collection batch by batch.  A non-zero return from visit stops the walk
 * and is returned.  A collection with no objects is simply empty.
 */
int sync_store_snapshot_scan(sync_store_snapshot *snapshot, const char *collection,
                             const json_t *after_id,
                             int (*visit)(const sync_store_document_view *document,
                                          void *context),
                             void *context);

/* The visible document of one object as the snapshot shows it, a new
 * reference in *document; -ENOENT when it does not exist there. */
int sync_store_snapshot_get_document(sync_store_snapshot *snapshot, const char *collection,
                                     const json_t *id, json_t **document);

/* Visit the names of the collections that hold or held objects, in byte
 * order. */
int sync_store_snapshot_list_collections(sync_store_snapshot *snapshot,
                                         int (*visit)(const char *collection, void *context),
                                         void *context);

/* The number of existing objects of a collection in the snapshot (0 for a
 * collection never seen), in constant time, for progress estimates. */
int sync_store_snapshot_count(sync_store_snapshot *snapshot, const char *collection,
                              uint64_t *count);

#endif

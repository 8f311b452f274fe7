/*
 * fs.h — internals of the FUSE front end (not a public API).
 *
 * Threads and ownership:
 *  - The FUSE session loop runs on one thread (the "FUSE thread").  It alone
 *    creates, changes and frees nodes and handles; handlers therefore take
 *    no locks of their own.  The store (store.h) and the error log are
 *    thread-safe and are the only state shared with other threads.
 *  - The notifier thread (fs_notify.c) is the only thread that calls
 *    fuse_lowlevel_notify_*: handlers queue invalidations and return, which
 *    keeps the kernel's notification rules (never notify from inside a
 *    related request) true by construction.
 *  - On a synced mount, the sync thread (sync_client.c) writes downloads to
 *    the store, then queues invalidations through fs_notify_object_changed.
 *    That resolves names to inode numbers with fs_nodes_find_ino, the one
 *    node-table function other threads may call: the FUSE thread changes
 *    the name table under a mutex for it (fs_nodes.c).
 */
#ifndef REALMFS_FS_H
#define REALMFS_FS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "realmfs/error_log.h"
#include "realmfs/store.h"

#define FS_CONTROL_DIR ".realmfs"

/* How long the kernel may cache names and attributes it got from us.  Every
 * change that does not come through the kernel is followed by an
 * invalidation, so stable entries can be cached long. */
#define FS_STABLE_TIMEOUT_SECONDS 60.0

typedef enum fs_node_kind {
    FS_NODE_ROOT,
    FS_NODE_CONTROL_DIR,   /* .realmfs */
    FS_NODE_SCHEMA_DIR,    /* .realmfs/schema */
    FS_NODE_STATUS,        /* .realmfs/status */
    FS_NODE_ERRORS,        /* .realmfs/errors */
    FS_NODE_SCHEMA,        /* .realmfs/schema/<Collection>.json */
    FS_NODE_COLLECTION,    /* <Collection> */
    FS_NODE_OBJECT,        /* <Collection>/<_id>.json */
    FS_NODE_SCRATCH,       /* any other name in a collection, the schema dir or a
                              subscription dir */
    FS_NODE_SUBSCRIPTIONS_DIR, /* .realmfs/subscriptions (synced mounts) */
    FS_NODE_SUBSCRIPTION_DIR,  /* .realmfs/subscriptions/<Collection> */
    FS_NODE_SUBSCRIPTION,      /* .realmfs/subscriptions/<Collection>/<name> */
    FS_NODE_MARK,              /* .realmfs/mark (synced mounts): opening it for writing
                                  asks the server for a mark (`realmfs wait`) */
} fs_node_kind;

typedef struct fs_handle fs_handle;
typedef struct fs_context fs_context;

typedef struct fs_node {
    fuse_ino_t ino;
    fs_node_kind kind;
    fuse_ino_t parent;        /* 0 once detached (deleted or replaced) */
    char *name;               /* name in the parent directory */
    char *collection;         /* objects, collections, schemas; scratch in a collection */
    json_t *id;               /* objects: the decoded _id (NULL for a pending hashed name) */
    uint64_t lookups;         /* the kernel's lookup count */
    bool pending;             /* object created but still empty: not in the store */
    int64_t pending_modified_ns;
    unsigned open_writers;    /* handles open for writing: each may hold a draft */
    fs_handle *latest_draft;  /* the handle written to last, while its draft is unsaved */
    fs_handle *open_documents; /* documents: the open handles, newest first (they keep
                                  their snapshot once the object is deleted) */
    /* Page-cache reads of objects (see "Reading through the page cache" in
     * fs_ops.c).  Versions are the store's (store_object_info.version);
     * 0 means none or unknown. */
    unsigned cached_readers;  /* open handles that read through the page cache */
    unsigned holding_readers; /* those of them that writers still wait for */
    unsigned waiting_writers; /* opens for writing held until those close */
    uint64_t page_cache_version;  /* the version the kernel's pages may hold */
    uint64_t kernel_attr_version; /* the version of the attributes last given to the
                                     kernel with a nonzero timeout */
    struct fs_node *name_next; /* chain in the (parent, name) table */
} fs_node;

struct fs_handle {
    struct fs_context *fs;
    fs_node *node;
    int fd;                   /* scratch files: the backing file; else -1 */
    fs_handle *next_open_document; /* in node->open_documents */
    char *data;               /* snapshot (read-only) or draft (writable) */
    size_t size;
    size_t capacity;
    int64_t modified_ns;      /* of the version the snapshot or draft started from */
    uint64_t version;         /* read-only object handles: the snapshot's store version */
    bool writable;
    bool cached;              /* reads go through the kernel's page cache */
    bool holds_writers;       /* cached, and writers wait for it to close */
    bool dirty;               /* draft differs from what was last committed */
    bool written;             /* the draft got data since it was opened or committed,
                                 not just an O_TRUNC or truncation to zero */
    /* directories */
    char **extra_names;       /* scratch and pending names listed before objects */
    size_t extra_count;
    json_t *resume_id;        /* last object listed, for resuming readdir */
    uint64_t resume_ordinal;  /* offset cookie that continues after resume_id */
};

struct fs_context {
    struct fuse_session *session;
    store *store;
    error_log *errors;
    char *data_directory;
    char *mountpoint;
    int scratch_directory_fd; /* <data>/scratch: backing files of scratch names */
    uid_t uid;
    gid_t gid;
    int64_t mounted_ns;
    struct sync_status *sync_status; /* NULL without --server (sync_status.h) */
};

/* ---- nodes (fs_nodes.c) ---- */
int fs_nodes_init(void);
void fs_nodes_destroy(void);
fs_node *fs_node_get(fuse_ino_t ino);
fs_node *fs_node_find(fuse_ino_t parent, const char *name);
/* The node for (parent, name), created with kind if absent. */
fs_node *fs_node_obtain(fuse_ino_t parent, const char *name, fs_node_kind kind,
                        const char *collection);
/* Move a node to a new (parent, name), detaching whatever was there. */
void fs_node_move(fs_node *node, fuse_ino_t parent, const char *name);
/* Remove from the name table; freed once the kernel forgets it. */
void fs_node_detach(fs_node *node);
void fs_node_forget(fs_node *node, uint64_t count);
/* Set or clear node->pending; nodes in the table change it only here. */
void fs_node_set_pending(fs_node *node, bool pending);
/* The inode number of the node named name in parent, 0 when there is none.
 * Any thread (see above). */
fuse_ino_t fs_nodes_find_ino(fuse_ino_t parent, const char *name);
/* Pending objects of a collection, for readdir. */
int fs_nodes_visit_pending(fuse_ino_t collection_ino,
                           int (*visit)(fs_node *node, void *context), void *context);

/* ---- notifications (fs_notify.c) ---- */
int fs_notify_start(struct fuse_session *session);
void fs_notify_stop(void);
void fs_notify_inode(fuse_ino_t ino);
void fs_notify_entry(fuse_ino_t parent, const char *name);
/* Any thread, after the store changed an object behind the kernel's back
 * (a download): drop the kernel's entry, attributes and pages of
 * <collection>/<name of id>, and, when listing_changed (the object appeared
 * or went), the collection's cached listing and the root's. */
void fs_notify_object_changed(const char *collection, const json_t *id, bool listing_changed);
/* Any thread, after the store's schema of collection changed behind the
 * kernel's back (the server's schemas): drop the kernel's entry and
 * attributes of .realmfs/schema/<collection>.json. */
void fs_notify_schema_changed(const char *collection);

/* ---- control files (fs_control.c) ---- */
/* Snapshot text of .realmfs/status or errors; malloc'd. */
int fs_control_status_text(fs_context *fs, char **text, size_t *size);
int fs_control_errors_text(fs_context *fs, char **text, size_t *size);

/* ---- subscriptions as files (fs_subscriptions.c; FUSE thread) ----
 * A subscription node's collection is its directory's and its name the
 * subscription's.  Functions return 0 or -errno unless said otherwise. */
/* Names editors use for backups, swap and lock files, and names that are
 * not UTF-8, are scratch files; every other name is a subscription. */
bool fs_subscription_name_is_scratch(const char *name);
/* The directories of .realmfs/subscriptions: the store's collections and
 * the collections that have subscriptions, once each, in byte order. */
int fs_subscription_directories_list(fs_context *fs,
                                     int (*visit)(const char *collection, void *context),
                                     void *context);
/* 1 when .realmfs/subscriptions/<collection> exists, 0 when not, or -errno. */
int fs_subscription_directory_exists(fs_context *fs, const char *collection);
/* mkdir: creates the collection; -EEXIST when the directory exists. */
int fs_subscription_directory_create(fs_context *fs, const char *collection);
/* rmdir of a directory the caller found empty of scratch and pending
 * names: -ENOTEMPTY while the collection has subscriptions or objects. */
int fs_subscription_directory_remove(fs_context *fs, const char *collection);
/* The subscription names of a collection, in byte order. */
int fs_subscriptions_list(fs_context *fs, const char *collection,
                          int (*visit)(const char *name, void *context), void *context);
/* The text of the file <collection>/<name>: the predicate and a newline
 * (malloc'd); -ENOENT when there is no such subscription. */
int fs_subscription_load(fs_context *fs, const char *collection, const char *name, char **text,
                         size_t *size);
/* Check text as node's predicate and store it (renamed_from, when given, is
 * the subscription a rename moves onto node).  -EINVAL with reason filled
 * in when the text is empty or does not parse; the store is then unchanged. */
int fs_subscription_commit(fs_context *fs, const fs_node *node, const char *text, size_t size,
                           const fs_node *renamed_from, char *reason, size_t reason_size);
int fs_subscription_delete(fs_context *fs, const fs_node *node);

/* ---- operations (fs_ops.c) ---- */
extern const struct fuse_lowlevel_ops fs_operations;
/* FUSE thread.  Milliseconds until the earliest held open for writing must
 * go ahead even though page-cache readers still hold its object, or -1
 * when no open is held: the session loop waits for requests at most that
 * long, then calls fs_release_overdue_writers. */
int fs_writer_wait_milliseconds(void);
void fs_release_overdue_writers(void);
/* Answer every held open with ENODEV: the session is ending. */
void fs_abandon_waiting_writers(void);

#endif

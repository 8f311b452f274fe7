/*
 * mount.h — `realmfs mount`: serve a realm's store at a mountpoint.
 */
#ifndef REALMFS_MOUNT_H
#define REALMFS_MOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mount_options {
    const char *mountpoint;
    const char *data_directory;   /* NULL: $XDG_DATA_HOME/realmfs/<mountpoint path> */
    bool foreground;              /* -f */
    bool debug;                   /* -d: libfuse's request trace; implies -f */
    const char **fuse_options;    /* each an -o argument passed to libfuse */
    size_t fuse_option_count;
    uint64_t map_size;            /* store size limit; 0 = the store's default */
    /* Synced mounts (docs/sync.md); server_url NULL: a local mount. */
    const char *server_url;       /* --server ws://HOST:PORT */
    const char *app_id;           /* --app */
    const char *authorization;    /* the Authorization header: a secret, kept in memory only */
    const char *user;             /* who logs in, for status: an email, "API key <id>",
                                     "anonymous" */
    const char *ca_file;          /* --ca-file for wss:// */
} mount_options;

/* Mount and serve until unmounted.  Without -f, returns in the calling
 * process once the daemon has mounted (0) or failed to (1, message printed).
 * A synced mount checks the login first, in the calling process: a refused
 * login is an error before anything is mounted. */
int mount_run(const mount_options *options);

#endif

/*
 * transfer_command.h — `realmfs-server import` and `realmfs-server export`:
 * a collection in and out of the sync store as JSON lines, the format
 * mongoexport writes and mongoimport reads.  docs/configuration.md
 * ("Import and export") is the user's reference.
 */
#ifndef REALMFS_TRANSFER_COMMAND_H
#define REALMFS_TRANSFER_COMMAND_H

/* Exit statuses of both commands. */
enum {
    TRANSFER_EXIT_OK = 0,       /* done: every line imported / exported */
    TRANSFER_EXIT_FAILED = 1,   /* nothing more could be done; stderr says why */
    TRANSFER_EXIT_USAGE = 2,    /* bad command line */
    TRANSFER_EXIT_SKIPPED = 3,  /* import read the whole file, but skipped
                                   lines it reported on stderr */
};

/* argv[0] is "import": realmfs-server import --app APPDIR --data DIR
 * COLLECTION FILE ("-": standard input).  Returns the exit status. */
int transfer_command_import(int argc, char **argv);

/* argv[0] is "export": realmfs-server export --app APPDIR --data DIR
 * COLLECTION [FILE] (default: standard output).  Returns the exit
 * status. */
int transfer_command_export(int argc, char **argv);

#endif

/*
 * query_command.h — `realmfs query`: the objects of a mounted collection
 * that match a Realm Query Language predicate, evaluated on the store.
 */
#ifndef REALMFS_QUERY_COMMAND_H
#define REALMFS_QUERY_COMMAND_H

/* argv[0] is "query".  Exit status: 0 done, 1 mount or store error, 2 bad
 * usage or predicate (printed with a caret under the error position). */
int query_command_run(int argc, char **argv);

#endif

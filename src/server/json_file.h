/*
 * json_file.h — JSON files the server writes for itself and for people:
 * written whole or not at all, and read back with every problem named.
 */
#ifndef REALMFS_JSON_FILE_H
#define REALMFS_JSON_FILE_H

#include <jansson.h>
#include <stddef.h>

/*
 * Replace the file at path with value, dumped with jansson's flags and a
 * final newline, so that a crash leaves either the old file or the new
 * one: the text goes to "<path>.tmp", which is fsync'd and renamed over
 * path, and then the directory is fsync'd so the rename itself lasts.
 * The file is made with mode 0644 (less the umask).  One writer at a time
 * per path: the temporary file's name is fixed.  0, or a negative errno
 * with a message "<file>: <problem>" (-ENOMEM included).
 */
int json_file_write(const char *path, const json_t *value, size_t flags, char *message,
                    size_t message_size);

/*
 * Parse the file at path, refusing duplicate keys.  0 with a new reference
 * in *value; -ENOENT (*value NULL, message set) when there is no file;
 * -EINVAL with "<path>: line L, column C: <problem>" when it is not JSON;
 * another negative errno when it cannot be read.
 */
int json_file_read(const char *path, json_t **value, char *message, size_t message_size);

#endif

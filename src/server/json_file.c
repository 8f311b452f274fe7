/*
 * json_file.c — writing JSON files atomically and reading them back (see
 * json_file.h).
 */
#include "json_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int json_file_fail(char *message, size_t message_size, int error, const char *path,
                          const char *problem)
{
    if (message_size > 0)
        snprintf(message, message_size, "%s: %s", path, problem);
    return error;
}

/* jansson's callback for json_dump_callback: every byte to the file. */
static int json_file_write_chunk(const char *buffer, size_t size, void *context)
{
    int fd = *(int *)context;
    while (size > 0) {
        ssize_t written = write(fd, buffer, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return -1;
        buffer += written;
        size -= (size_t)written;
    }
    return 0;
}

/* Dump value and a newline to fd, then make them durable.  0 or -errno. */
static int json_file_dump(int fd, const json_t *value, size_t flags)
{
    errno = 0;
    if (json_dump_callback(value, json_file_write_chunk, &fd, flags) != 0)
        return errno != 0 ? -errno : -ENOMEM;
    if (json_file_write_chunk("\n", 1, &fd) != 0)
        return -errno;
    return fsync(fd) == 0 ? 0 : -errno;
}

/* fsync the directory holding path, so that a rename into it lasts. */
static int json_file_sync_directory(const char *path)
{
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy)
        return -ENAMETOOLONG;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int result = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return result;
}

int json_file_write(const char *path, const json_t *value, size_t flags, char *message,
                    size_t message_size)
{
    char temporary[PATH_MAX];
    if (snprintf(temporary, sizeof temporary, "%s.tmp", path) >= (int)sizeof temporary)
        return json_file_fail(message, message_size, -ENAMETOOLONG, path, "path is too long");
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return json_file_fail(message, message_size, -errno, temporary, strerror(errno));
    int result = json_file_dump(fd, value, flags);
    if (close(fd) != 0 && result == 0)
        result = -errno;
    if (result == 0 && rename(temporary, path) != 0)
        result = -errno;
    if (result != 0) {
        unlink(temporary);
        return json_file_fail(message, message_size, result, path, strerror(-result));
    }
    result = json_file_sync_directory(path);
    if (result != 0)
        return json_file_fail(message, message_size, result, path, strerror(-result));
    return 0;
}

int json_file_read(const char *path, json_t **value, char *message, size_t message_size)
{
    *value = NULL;
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return json_file_fail(message, message_size, -errno, path, strerror(errno));
    json_error_t error;
    *value = json_loadf(file, JSON_REJECT_DUPLICATES, &error);
    bool unreadable = ferror(file) != 0;
    fclose(file);
    if (*value != NULL)
        return 0;
    if (unreadable)
        return json_file_fail(message, message_size, -EIO, path, "cannot read the file");
    if (json_error_code(&error) == json_error_out_of_memory)
        return json_file_fail(message, message_size, -ENOMEM, path, "out of memory");
    if (message_size > 0)
        snprintf(message, message_size, "%s: line %d, column %d: %s", path, error.line,
                 error.column, error.text);
    return -EINVAL;
}

/*
 * error_log.c — JSON-lines error record of a mount (see error_log.h).
 */
#include "realmfs/error_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct error_log {
    pthread_mutex_t lock; /* serializes appends, trims and reads */
    char *path;
    int fd;
    size_t count;
};

static int read_whole_file(int fd, char **text, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    char *buffer = malloc((size_t)st.st_size + 1);
    if (!buffer)
        return -ENOMEM;
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = pread(fd, buffer + done, (size_t)st.st_size - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int error = n < 0 ? -errno : -EIO;
            free(buffer);
            return error;
        }
        done += (size_t)n;
    }
    buffer[done] = '\0';
    *text = buffer;
    *size = done;
    return 0;
}

static size_t count_lines(const char *text, size_t size)
{
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    return lines;
}

int error_log_open(const char *path, error_log **out)
{
    error_log *log = calloc(1, sizeof *log);
    if (!log)
        return -ENOMEM;
    log->path = strdup(path);
    log->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (!log->path || log->fd < 0) {
        int error = log->path ? -errno : -ENOMEM;
        free(log->path);
        free(log);
        return error;
    }
    char *text;
    size_t size;
    if (read_whole_file(log->fd, &text, &size) == 0) {
        log->count = count_lines(text, size);
        free(text);
    }
    pthread_mutex_init(&log->lock, NULL);
    *out = log;
    return 0;
}

void error_log_close(error_log *log)
{
    if (!log)
        return;
    close(log->fd);
    pthread_mutex_destroy(&log->lock);
    free(log->path);
    free(log);
}

/* Keep the newest half of the log once it passes the limit: the log must
 * not grow without bound on a mount that rejects writes all day.  The new
 * file replaces the old one by rename, so a crash leaves one or the other. */
static int trim_if_too_large(error_log *log)
{
    struct stat st;
    if (fstat(log->fd, &st) != 0)
        return -errno;
    if (st.st_size <= ERROR_LOG_MAX_BYTES)
        return 0;
    char *text;
    size_t size;
    int error = read_whole_file(log->fd, &text, &size);
    if (error)
        return error;
    const char *keep = text + size / 2;
    const char *newline = memchr(keep, '\n', size - (size_t)(keep - text));
    keep = newline ? newline + 1 : text + size;
    size_t keep_size = size - (size_t)(keep - text);

    size_t temporary_length = strlen(log->path) + 8;
    char *temporary = malloc(temporary_length);
    if (!temporary) {
        free(text);
        return -ENOMEM;
    }
    snprintf(temporary, temporary_length, "%s.trim", log->path);
    int fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    error = fd < 0 ? -errno : 0;
    if (!error && write(fd, keep, keep_size) != (ssize_t)keep_size)
        error = -EIO;
    if (!error && rename(temporary, log->path) != 0)
        error = -errno;
    if (error) {
        if (fd >= 0)
            close(fd);
        unlink(temporary);
    } else {
        close(log->fd);
        log->fd = fd;
        log->count = count_lines(keep, keep_size);
    }
    free(temporary);
    free(text);
    return error;
}

static void format_now(char *out, size_t size)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    size_t used = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(out + used, size - used, ".%03ldZ", now.tv_nsec / 1000000);
}

int error_log_append(error_log *log, const char *path, const char *operation,
                     int error_code, const char *reason, const json_t *extra)
{
    char time_text[40];
    format_now(time_text, sizeof time_text);
    const char *error_name = strerrorname_np(error_code);
    json_t *record = json_pack("{s:s, s:s, s:s, s:s, s:s}", "time", time_text,
                               "path", path, "operation", operation,
                               "error", error_name ? error_name : "EIO", "reason", reason);
    if (!record)
        return -ENOMEM;
    if (extra && json_object_update(record, (json_t *)extra) != 0) {
        json_decref(record);
        return -ENOMEM;
    }
    char *line = json_dumps(record, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(record);
    if (!line)
        return -ENOMEM;
    size_t length = strlen(line);
    line[length] = '\n';

    pthread_mutex_lock(&log->lock);
    /* One write() per record: readers never see half a line. */
    ssize_t written = write(log->fd, line, length + 1);
    int error = written == (ssize_t)(length + 1) ? 0 : -EIO;
    if (!error) {
        log->count++;
        trim_if_too_large(log);
    }
    pthread_mutex_unlock(&log->lock);
    free(line);
    return error;
}

int error_log_read(error_log *log, char **text, size_t *size)
{
    pthread_mutex_lock(&log->lock);
    int error = read_whole_file(log->fd, text, size);
    pthread_mutex_unlock(&log->lock);
    return error;
}

size_t error_log_count(error_log *log)
{
    pthread_mutex_lock(&log->lock);
    size_t count = log->count;
    pthread_mutex_unlock(&log->lock);
    return count;
}

/*
 * log.c — see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static server_log_level log_threshold = SERVER_LOG_INFO;

static const char *const level_names[] = {
    [SERVER_LOG_ERROR] = "error",
    [SERVER_LOG_WARN] = "warn",
    [SERVER_LOG_INFO] = "info",
    [SERVER_LOG_DEBUG] = "debug",
};

void server_log_set_level(server_log_level level)
{
    log_threshold = level;
}

server_log_level server_log_get_level(void)
{
    return log_threshold;
}

bool server_log_enabled(server_log_level level)
{
    return level <= log_threshold;
}

int server_log_parse_level(const char *name, server_log_level *level)
{
    for (size_t i = 0; i < sizeof level_names / sizeof *level_names; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (server_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* "2024-05-01T12:00:00.123Z"; returns its length. */
static size_t format_now(char *buffer, size_t size)
{
    struct timespec now;
    struct tm fields;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &fields);
    size_t length = strftime(buffer, size, "%Y-%m-%dT%H:%M:%S", &fields);
    int written = snprintf(buffer + length, size - length, ".%03ldZ", now.tv_nsec / 1000000);
    return written > 0 ? length + (size_t)written : length;
}

void server_log(server_log_level level, const char *format, ...)
{
    if (!server_log_enabled(level))
        return;
    char line[4096];
    size_t length = format_now(line, sizeof line);
    length += (size_t)snprintf(line + length, sizeof line - length, " %s ", level_names[level]);
    size_t message_start = length;

    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(line + length, sizeof line - length, format, arguments);
    va_end(arguments);
    if (written < 0)
        written = 0;
    length += (size_t)written;
    if (length > sizeof line - 2)
        length = sizeof line - 2;
    for (size_t i = message_start; i < length; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = ' ';
    }
    line[length++] = '\n';

    /* A failed or short write to stderr has nowhere to be reported. */
    for (size_t done = 0; done < length;) {
        ssize_t result = write(STDERR_FILENO, line + done, length - done);
        if (result < 0 && errno == EINTR)
            continue;
        if (result <= 0)
            break;
        done += (size_t)result;
    }
}

/*
 * log.h — realmfs-server's levelled log: one line per record on stderr,
 *
 *   2024-05-01T12:00:00.123Z info listening on ws://127.0.0.1:9090
 *
 * the time in UTC with milliseconds, the level, the message.  A record is
 * written with one write(2), so records of several processes sharing the
 * stream do not interleave, and control characters in a message (which may
 * quote what a client sent) become spaces, so one record is one line.
 *
 * Threads: the level is set once at start, before anything logs.
 */
#ifndef REALMFS_SERVER_LOG_H
#define REALMFS_SERVER_LOG_H

#include <stdbool.h>

typedef enum server_log_level {
    SERVER_LOG_ERROR,
    SERVER_LOG_WARN,
    SERVER_LOG_INFO,
    SERVER_LOG_DEBUG,
} server_log_level;

/* Records of this level and the more severe ones are written; the default
 * is SERVER_LOG_INFO. */
void server_log_set_level(server_log_level level);
server_log_level server_log_get_level(void);
bool server_log_enabled(server_log_level level);

/* "error", "warn", "info" or "debug": 0, else -EINVAL. */
int server_log_parse_level(const char *name, server_log_level *level);

/* Messages longer than about 4 KiB are cut. */
void server_log(server_log_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#endif

/*
 * error_log.h — the mount's record of rejected writes and other errors,
 * shown to users as MOUNTPOINT/.realmfs/errors: JSON lines, newest last.
 *
 * Each record is one line: {"time": "<ISO-8601>", "path": "Task/a1.json",
 * "operation": "close", "error": "EINVAL", "reason": "...", ...extra fields}.
 * The log lives in a file of the data directory, so it outlives the mount;
 * it keeps at most ERROR_LOG_MAX_BYTES, dropping the oldest records.
 * Appends are serialized by a mutex: any thread may log.
 */
#ifndef REALMFS_ERROR_LOG_H
#define REALMFS_ERROR_LOG_H

#include <jansson.h>
#include <stddef.h>

#define ERROR_LOG_MAX_BYTES (1024 * 1024)

typedef struct error_log error_log;

/* Open (creating) the log file at path.  0 or -errno. */
int error_log_open(const char *path, error_log **out);
void error_log_close(error_log *log);

/*
 * Append one record.  path, operation and reason are required; error_code is
 * an errno value shown by name; extra (may be NULL) adds fields (for
 * instance the rejected "content").  Returns 0 or -errno; a failure to log
 * never hides the original error from the caller.
 */
int error_log_append(error_log *log, const char *path, const char *operation,
                     int error_code, const char *reason, const json_t *extra);

/* A copy of the whole log (malloc'd) for reading; 0 or -errno. */
int error_log_read(error_log *log, char **text, size_t *size);

/* Number of records appended since open plus those already in the file. */
size_t error_log_count(error_log *log);

#endif

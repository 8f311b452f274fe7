/*
 * mount_sync_bench — stopwatch for synced mounts, working only through the
 * mounts' files as a user's programs do (bench/run-mount-sync drives it;
 * results and method in BENCHMARKS.md, "Synced mounts").
 *
 *   mount_sync_bench latency --from MOUNT --to MOUNT [--samples 200]
 *   mount_sync_bench write   --mount MOUNT --count N
 *   mount_sync_bench drain   --mount MOUNT [--timeout 600]
 *
 * latency: writes an Item on one mount, then edits it --samples times;
 * each sample runs from before the edit's open() on --from to the first
 * read on --to that returns the new content (polled every 200 µs), and
 * the next edit waits for it.  write: rewrites the summaries of the
 * objects run-mount-sync imported (sync_bench generate's ids 1..N), as an
 * offline user would, and reports how fast the mount took them.  drain:
 * follows .realmfs/status (every 10 ms) until the mount is connected and
 * then until no upload is pending; it reports the time between the two,
 * which leaves the reconnection backoff out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { POLL_INTERVAL_US = 200, DOCUMENT_MAX = 512 };

/* The id of the latency benchmark's object: no generated id comes near. */
static const char latency_id[] = "ffffffffffffffffffff0001";

typedef struct bench_options {
    const char *mode;
    const char *from;
    const char *to;
    const char *mount;
    long samples;
    long count;
    double timeout_seconds;
} bench_options;

static double now_seconds(void)
{
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec + (double)time.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "mount_sync_bench: %s%s%s\n", what, *detail ? ": " : "", detail);
    exit(1);
}

static void pause_briefly(void)
{
    struct timespec pause = { .tv_nsec = POLL_INTERVAL_US * 1000 };
    nanosleep(&pause, NULL);
}

/* An Item document as the app's schema wants it, in document (of
 * DOCUMENT_MAX bytes); its length. */
static size_t format_item(char *document, const char *id, const char *owner, const char *summary)
{
    int length = snprintf(document, DOCUMENT_MAX,
                          "{\"_id\": {\"$oid\": \"%s\"}, \"owner_id\": \"%s\", "
                          "\"summary\": \"%s\", \"isComplete\": false}\n",
                          id, owner, summary);
    if (length < 0 || length >= DOCUMENT_MAX)
        die("a document does not fit", summary);
    return (size_t)length;
}

static void object_path(char *path, size_t size, const char *mount, const char *id)
{
    if ((size_t)snprintf(path, size, "%s/Item/%s.json", mount, id) >= size)
        die("the mount's path is too long", mount);
}

/* One write of a whole file, as an editor saving in place does. */
static void write_file(const char *path, const char *text, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die(path, strerror(errno));
    ssize_t written = write(fd, text, size);
    if (written != (ssize_t)size)
        die(path, written < 0 ? strerror(errno) : "short write");
    if (close(fd) != 0)
        die(path, strerror(errno));
}

/* Whether the file contains needle now; a missing file does not. */
static bool file_contains(const char *path, const char *needle)
{
    char content[DOCUMENT_MAX * 2];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t size = read(fd, content, sizeof content - 1);
    close(fd);
    if (size < 0)
        return false;
    content[size] = '\0';
    return strstr(content, needle) != NULL;
}

/* Seconds until path contains needle, or a failure after timeout. */
static double wait_for_content(const char *path, const char *needle, double start,
                               double timeout_seconds)
{
    for (;;) {
        if (file_contains(path, needle))
            return now_seconds() - start;
        if (now_seconds() - start > timeout_seconds)
            die("the change did not arrive in time at", path);
        pause_briefly();
    }
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_latency(const bench_options *options)
{
    char from_path[4096], to_path[4096], document[DOCUMENT_MAX], summary[64];
    object_path(from_path, sizeof from_path, options->from, latency_id);
    object_path(to_path, sizeof to_path, options->to, latency_id);
    snprintf(summary, sizeof summary, "latency sample %06d", 0);
    write_file(from_path, document, format_item(document, latency_id, "latency", summary));
    wait_for_content(to_path, summary, now_seconds(), options->timeout_seconds);
    double *latencies = calloc((size_t)options->samples, sizeof *latencies);
    if (latencies == NULL)
        die("out of memory", "");
    for (long i = 0; i < options->samples; i++) {
        snprintf(summary, sizeof summary, "latency sample %06ld", i + 1);
        size_t size = format_item(document, latency_id, "latency", summary);
        double start = now_seconds();
        write_file(from_path, document, size);
        latencies[i] = 1000 * wait_for_content(to_path, summary, start, options->timeout_seconds);
    }
    qsort(latencies, (size_t)options->samples, sizeof *latencies, compare_doubles);
    size_t last = (size_t)options->samples - 1;
    printf("latency samples=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", options->samples,
           latencies[last / 2], latencies[(size_t)((double)last * 0.99)], latencies[last]);
    free(latencies);
    return 0;
}

static int run_write(const bench_options *options)
{
    char path[4096], id[25], document[DOCUMENT_MAX], summary[64];
    double start = now_seconds();
    for (long i = 0; i < options->count; i++) {
        snprintf(id, sizeof id, "%024lx", i + 1);
        snprintf(summary, sizeof summary, "offline edit %ld", i);
        object_path(path, sizeof path, options->mount, id);
        write_file(path, document, format_item(document, id, "offline", summary));
    }
    double seconds = now_seconds() - start;
    printf("write objects=%ld seconds=%.3f objects_per_second=%.0f\n", options->count, seconds,
           (double)options->count / seconds);
    return 0;
}

/* The mount's sync status: state and pending uploads. */
static void read_sync_status(const char *mount, char *state, size_t state_size,
                             long long *pending)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.realmfs/status", mount);
    json_error_t error;
    json_t *status = json_load_file(path, 0, &error);
    if (status == NULL)
        die("cannot read the status", error.text);
    json_t *sync = json_object_get(status, "sync");
    const char *text = json_string_value(json_object_get(sync, "state"));
    json_t *count = json_object_get(sync, "pending_uploads");
    if (text == NULL || !json_is_integer(count))
        die("the status has no sync state", path);
    snprintf(state, state_size, "%s", text);
    *pending = json_integer_value(count);
    json_decref(status);
}

static int run_drain(const bench_options *options)
{
    char state[32];
    long long pending, first_pending = -1;
    double start = now_seconds(), connected_at = 0;
    for (;;) {
        read_sync_status(options->mount, state, sizeof state, &pending);
        double now = now_seconds();
        if (connected_at == 0 && strcmp(state, "connected") == 0) {
            connected_at = now;
            first_pending = pending;
        }
        if (connected_at != 0 && pending == 0)
            break;
        if (strcmp(state, "error") == 0)
            die("the mount stopped syncing", options->mount);
        if (now - start > options->timeout_seconds)
            die("timed out waiting for the uploads of", options->mount);
        struct timespec pause = { .tv_nsec = 10 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    double seconds = now_seconds() - connected_at;
    printf("drain changesets=%lld seconds=%.3f changesets_per_second=%.0f "
           "reconnect_seconds=%.3f\n",
           first_pending, seconds, (double)first_pending / seconds, connected_at - start);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mount_sync_bench latency --from MOUNT --to MOUNT [--samples 200]\n"
            "       mount_sync_bench write --mount MOUNT --count N\n"
            "       mount_sync_bench drain --mount MOUNT [--timeout 600]\n");
    exit(2);
}

static void parse_options(int argc, char **argv, bench_options *options)
{
    static const struct option long_options[] = {
        { "from", required_argument, NULL, 'f' },    { "to", required_argument, NULL, 't' },
        { "mount", required_argument, NULL, 'm' },   { "samples", required_argument, NULL, 's' },
        { "count", required_argument, NULL, 'n' },   { "timeout", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    *options = (bench_options){ .samples = 200, .timeout_seconds = 600 };
    if (argc < 2)
        usage();
    options->mode = argv[1];
    optind = 2;
    for (int option; (option = getopt_long(argc, argv, "", long_options, NULL)) != -1;) {
        switch (option) {
        case 'f': options->from = optarg; break;
        case 't': options->to = optarg; break;
        case 'm': options->mount = optarg; break;
        case 's': options->samples = atol(optarg); break;
        case 'n': options->count = atol(optarg); break;
        case 'T': options->timeout_seconds = atof(optarg); break;
        default: usage();
        }
    }
    if (options->samples < 1 || options->timeout_seconds <= 0)
        usage();
}

int main(int argc, char **argv)
{
    bench_options options;
    parse_options(argc, argv, &options);
    if (strcmp(options.mode, "latency") == 0 && options.from && options.to)
        return run_latency(&options);
    if (strcmp(options.mode, "write") == 0 && options.mount && options.count > 0)
        return run_write(&options);
    if (strcmp(options.mode, "drain") == 0 && options.mount)
        return run_drain(&options);
    usage();
}

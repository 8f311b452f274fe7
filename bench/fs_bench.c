/*
 * fs_bench.c — the timed part of the file-system benchmark (bench/run-fs).
 *
 * One run of this program does one operation on a range of benchmark
 * objects (bench_objects.h) in one directory, and prints
 *
 *     <operation> <files> <nanoseconds>
 *
 * where nanoseconds is the wall-clock time of the loop of system calls
 * alone.  Everything else (parsing arguments, making names and contents,
 * opening the directory, checking results) happens outside the timed
 * loop, so what is measured is the file system plus a few nanoseconds of
 * loop per file.  All calls are relative to a descriptor of the directory,
 * as find, ls and rsync do, so no path walk through the mountpoint's
 * parents is timed.
 *
 * bench/run-fs runs this against several mounts and compares them; it is
 * the place to read about what is measured and how caches are handled.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_objects.h"

/* "." + name + ".tmp" + NUL */
#define TEMPORARY_NAME_SIZE (BENCH_OBJECT_NAME_SIZE + 5)
#define READ_BUFFER_SIZE (64 * 1024)
/* the ObjectId counter in names has 24 bits (bench_objects.h) */
#define INDEX_LIMIT (1u << 24)

static const char usage_text[] =
    "usage: fs_bench OPERATION DIRECTORY [--first N] [--count N] [--shuffle]\n"
    "       fs_bench name INDEX\n"
    "       fs_bench content INDEX [--updated]\n"
    "\n"
    "Operations on objects first .. first+count-1 of DIRECTORY:\n"
    "  create   open(O_CREAT|O_TRUNC), write, close\n"
    "  stat     fstatat\n"
    "  read     open, read to end of file, close\n"
    "  update   write the updated content to .NAME.tmp, close, rename it onto\n"
    "           NAME (an editor's or a jq pipeline's save)\n"
    "  delete   unlink\n"
    "  verify   read and compare with the expected content (--updated: after update)\n"
    "  ls       opendir, readdir and fstatat every entry, as `ls -l` does;\n"
    "           fails unless exactly --count entries are listed\n"
    "\n"
    "--shuffle visits the objects in a fixed pseudo-random order instead of\n"
    "in name order, so no file system gains from neighbouring names.\n"
    "Prints: OPERATION FILES NANOSECONDS\n";

typedef struct workload {
    const char *operation;
    const char *directory;
    int directory_fd;
    uint32_t first;
    uint32_t count;
    bool shuffle;
    bench_revision revision;    /* content to write or expect */
    uint32_t *order;            /* object indexes in visiting order */
    char (*names)[BENCH_OBJECT_NAME_SIZE];
    char (*temporary_names)[TEMPORARY_NAME_SIZE];
    char *contents;             /* BENCH_OBJECT_CONTENT_MAX bytes per object */
    size_t *content_lengths;
    size_t expected_bytes;      /* sum of content_lengths */
} workload;

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* Report a failed call on one file; always returns -1. */
static int fail_on(const workload *w, const char *call, const char *name)
{
    fprintf(stderr, "fs_bench %s: %s %s/%s: %s\n", w->operation, call, w->directory, name,
            strerror(errno));
    return -1;
}

static bool parse_number(const char *text, uint32_t limit, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value > limit)
        return false;
    *out = (uint32_t)value;
    return true;
}

/* ---------------------------------------------------------------------
 * Preparing a workload (untimed)
 * --------------------------------------------------------------------- */

/* A fixed permutation (Fisher-Yates with a fixed xorshift seed), the same
 * in every run and for every file system. */
static void shuffle_order(uint32_t *order, uint32_t count)
{
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (uint32_t i = count; i > 1; i--) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        uint32_t j = (uint32_t)(state % i);
        uint32_t kept = order[i - 1];
        order[i - 1] = order[j];
        order[j] = kept;
    }
}

static int prepare_workload(workload *w)
{
    size_t count = w->count ? w->count : 1;
    w->order = calloc(count, sizeof *w->order);
    w->names = calloc(count, sizeof *w->names);
    w->temporary_names = calloc(count, sizeof *w->temporary_names);
    w->contents = calloc(count, BENCH_OBJECT_CONTENT_MAX);
    w->content_lengths = calloc(count, sizeof *w->content_lengths);
    if (!w->order || !w->names || !w->temporary_names || !w->contents || !w->content_lengths) {
        fprintf(stderr, "fs_bench: out of memory for %u objects\n", w->count);
        return -1;
    }
    for (uint32_t i = 0; i < w->count; i++)
        w->order[i] = w->first + i;
    if (w->shuffle)
        shuffle_order(w->order, w->count);
    /* slot i describes the i-th object visited */
    for (uint32_t i = 0; i < w->count; i++) {
        bench_object_name(w->order[i], w->names[i]);
        snprintf(w->temporary_names[i], TEMPORARY_NAME_SIZE, ".%s.tmp", w->names[i]);
        w->content_lengths[i] = bench_object_content(
            w->order[i], w->revision, w->contents + (size_t)i * BENCH_OBJECT_CONTENT_MAX);
        w->expected_bytes += w->content_lengths[i];
    }
    w->directory_fd = open(w->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->directory_fd < 0) {
        fprintf(stderr, "fs_bench: cannot open directory %s: %s\n", w->directory,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void free_workload(workload *w)
{
    if (w->directory_fd >= 0)
        close(w->directory_fd);
    free(w->order);
    free(w->names);
    free(w->temporary_names);
    free(w->contents);
    free(w->content_lengths);
}

static const char *content_of(const workload *w, uint32_t slot)
{
    return w->contents + (size_t)slot * BENCH_OBJECT_CONTENT_MAX;
}

/* ---------------------------------------------------------------------
 * The timed operations: each returns 0, or -1 after printing why
 * --------------------------------------------------------------------- */

/* Write a whole file the way fopen("w") + fwrite + fclose do. */
static int write_file(const workload *w, const char *name, const char *content, size_t length)
{
    int fd = openat(w->directory_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail_on(w, "open", name);
    ssize_t written = write(fd, content, length);
    if (written != (ssize_t)length) {
        if (written >= 0)
            errno = EIO; /* a short write of 300 bytes means something is wrong */
        fail_on(w, "write", name);
        close(fd);
        return -1;
    }
    /* realmfs validates and commits on close: its errors surface here */
    if (close(fd) != 0)
        return fail_on(w, "close", name);
    return 0;
}

static int run_create(const workload *w)
{
    for (uint32_t i = 0; i < w->count; i++)
        if (write_file(w, w->names[i], content_of(w, i), w->content_lengths[i]) != 0)
            return -1;
    return 0;
}

static int run_update(const workload *w)
{
    for (uint32_t i = 0; i < w->count; i++) {
        if (write_file(w, w->temporary_names[i], content_of(w, i), w->content_lengths[i]) != 0)
            return -1;
        if (renameat(w->directory_fd, w->temporary_names[i], w->directory_fd, w->names[i]) != 0)
            return fail_on(w, "rename onto", w->names[i]);
    }
    return 0;
}

static int run_stat(const workload *w)
{
    struct stat st;
    for (uint32_t i = 0; i < w->count; i++)
        if (fstatat(w->directory_fd, w->names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
            return fail_on(w, "stat", w->names[i]);
    return 0;
}

/* Read one file to its end as cat does (until read returns 0); adds the
 * bytes read to *total. */
static int read_file(const workload *w, const char *name, char *buffer, size_t *total)
{
    int fd = openat(w->directory_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_on(w, "open", name);
    ssize_t n;
    while ((n = read(fd, buffer, READ_BUFFER_SIZE)) > 0)
        *total += (size_t)n;
    if (n < 0) {
        fail_on(w, "read", name);
        close(fd);
        return -1;
    }
    if (close(fd) != 0)
        return fail_on(w, "close", name);
    return 0;
}

static int run_read(const workload *w, char *buffer, size_t *total)
{
    for (uint32_t i = 0; i < w->count; i++)
        if (read_file(w, w->names[i], buffer, total) != 0)
            return -1;
    return 0;
}

static int run_delete(const workload *w)
{
    for (uint32_t i = 0; i < w->count; i++)
        if (unlinkat(w->directory_fd, w->names[i], 0) != 0)
            return fail_on(w, "unlink", w->names[i]);
    return 0;
}

/* What `ls -l` asks of the file system: every name, then lstat of each.
 * The directory is opened through a new descriptor (opendir), as ls does. */
static int run_list(const workload *w, uint32_t *listed)
{
    DIR *listing = opendir(w->directory);
    if (!listing)
        return fail_on(w, "opendir", ".");
    int fd = dirfd(listing);
    struct dirent *entry;
    struct stat st;
    errno = 0;
    while ((entry = readdir(listing))) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if (fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            fail_on(w, "stat", entry->d_name);
            closedir(listing);
            return -1;
        }
        (*listed)++;
    }
    if (errno != 0) {
        fail_on(w, "readdir", ".");
        closedir(listing);
        return -1;
    }
    if (closedir(listing) != 0)
        return fail_on(w, "closedir", ".");
    return 0;
}

/* Untimed: every object holds exactly the expected bytes. */
static int run_verify(const workload *w, char *buffer)
{
    for (uint32_t i = 0; i < w->count; i++) {
        size_t size = 0;
        if (read_file(w, w->names[i], buffer, &size) != 0)
            return -1;
        /* read_file reuses the buffer per read: fine, objects are < 1 read */
        if (size != w->content_lengths[i] || memcmp(buffer, content_of(w, i), size) != 0) {
            fprintf(stderr, "fs_bench verify: %s/%s does not hold the expected content\n",
                    w->directory, w->names[i]);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Running one operation
 * --------------------------------------------------------------------- */

static int run_operation(workload *w)
{
    char *buffer = malloc(READ_BUFFER_SIZE);
    if (!buffer) {
        fprintf(stderr, "fs_bench: out of memory\n");
        return -1;
    }
    const char *operation = w->operation;
    uint32_t files = w->count;
    size_t bytes_read = 0;
    int result;
    int64_t start = monotonic_ns();
    if (strcmp(operation, "create") == 0) {
        result = run_create(w);
    } else if (strcmp(operation, "update") == 0) {
        result = run_update(w);
    } else if (strcmp(operation, "stat") == 0) {
        result = run_stat(w);
    } else if (strcmp(operation, "read") == 0) {
        result = run_read(w, buffer, &bytes_read);
    } else if (strcmp(operation, "delete") == 0) {
        result = run_delete(w);
    } else if (strcmp(operation, "ls") == 0) {
        files = 0;
        result = run_list(w, &files);
    } else if (strcmp(operation, "verify") == 0) {
        result = run_verify(w, buffer);
    } else {
        fprintf(stderr, "fs_bench: unknown operation %s\n\n%s", operation, usage_text);
        result = -1;
    }
    int64_t elapsed = monotonic_ns() - start;
    free(buffer);
    if (result != 0)
        return -1;
    /* sanity checks that cost nothing inside the loop */
    if (strcmp(operation, "read") == 0 && bytes_read != w->expected_bytes) {
        fprintf(stderr, "fs_bench read: read %zu bytes from %s, expected %zu\n", bytes_read,
                w->directory, w->expected_bytes);
        return -1;
    }
    if (strcmp(operation, "ls") == 0 && files != w->count) {
        fprintf(stderr, "fs_bench ls: listed %u entries in %s, expected %u\n", files,
                w->directory, w->count);
        return -1;
    }
    printf("%s %u %lld\n", operation, files, (long long)elapsed);
    return 0;
}

/* `fs_bench name INDEX` and `fs_bench content INDEX [--updated]`, for the
 * script's cmp of sample files. */
static int print_object(int argc, char **argv)
{
    uint32_t index;
    bool updated = argc == 4 && strcmp(argv[3], "--updated") == 0;
    if ((argc != 3 && !updated) || !parse_number(argv[2], INDEX_LIMIT - 1, &index)) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (strcmp(argv[1], "name") == 0) {
        char name[BENCH_OBJECT_NAME_SIZE];
        bench_object_name(index, name);
        puts(name);
    } else {
        char content[BENCH_OBJECT_CONTENT_MAX];
        size_t length = bench_object_content(
            index, updated ? BENCH_REVISION_UPDATED : BENCH_REVISION_CREATED, content);
        fwrite(content, 1, length, stdout);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "name") == 0 || strcmp(argv[1], "content") == 0))
        return print_object(argc, argv);
    static const struct option long_options[] = {
        {"first", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'c'},
        {"shuffle", no_argument, NULL, 's'},
        {"updated", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    workload w = {.directory_fd = -1, .count = 1, .revision = BENCH_REVISION_CREATED};
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'f':
        case 'c': {
            uint32_t *target = option == 'f' ? &w.first : &w.count;
            if (!parse_number(optarg, INDEX_LIMIT, target)) {
                fprintf(stderr, "fs_bench: invalid number %s\n", optarg);
                return 2;
            }
            break;
        }
        case 's':
            w.shuffle = true;
            break;
        case 'u':
            w.revision = BENCH_REVISION_UPDATED;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind != argc - 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    w.operation = argv[optind];
    w.directory = argv[optind + 1];
    /* an update always writes the other revision, so it changes the file */
    if (strcmp(w.operation, "update") == 0)
        w.revision = BENCH_REVISION_UPDATED;
    if ((uint64_t)w.first + w.count > INDEX_LIMIT) {
        fprintf(stderr, "fs_bench: objects past %u would repeat names\n", INDEX_LIMIT);
        return 2;
    }
    int status = prepare_workload(&w) == 0 && run_operation(&w) == 0 ? 0 : 1;
    free_workload(&w);
    return status;
}

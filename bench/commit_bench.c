/*
 * commit_bench.c — what one object commit costs inside the realmfs daemon,
 * step by step, without FUSE.
 *
 * When a file in a collection is closed, the daemon parses the written
 * text, checks it, formats its canonical text and stores it (fs_ops.c,
 * commit_document).  This program times those steps separately, each as a
 * loop over the benchmark objects (bench_objects.h), against a new store in
 * DIRECTORY (put it on a tmpfs to leave the disk out):
 *
 *   parse       ejson_parse of the written text
 *   format      ejson_format_pretty of the parsed document
 *   name        object_name_from_id of its _id
 *   schema      store_get_schema (none exists: the common case)
 *   put-new     store_put_object of a new object
 *   info        store_get_object_info (what LOOKUP and GETATTR cost)
 *   get         store_get_object (what OPEN costs)
 *   put-replace store_put_object over an existing object
 *   delete      store_delete_object
 *
 * and prints microseconds per object for each.  fs_bench and bench/run-fs
 * measure the whole file system; this says which part of a commit to make
 * cheaper.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_objects.h"
#include "realmfs/ejson.h"
#include "realmfs/object_name.h"
#include "realmfs/store.h"

#define COLLECTION "Task"

typedef struct prepared {
    uint32_t count;
    char *texts;          /* BENCH_OBJECT_CONTENT_MAX bytes per object */
    size_t *lengths;
    json_t **documents;   /* parsed, for the steps after parsing */
    const json_t **ids;   /* borrowed from documents */
} prepared;

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static int64_t realtime_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void report(const char *step, uint32_t count, int64_t elapsed_ns)
{
    printf("%-12s %8.2f us\n", step, (double)elapsed_ns / count / 1000.0);
}

static const char *text_of(const prepared *p, uint32_t i)
{
    return p->texts + (size_t)i * BENCH_OBJECT_CONTENT_MAX;
}

static int prepare(prepared *p, uint32_t count)
{
    p->count = count;
    p->texts = calloc(count, BENCH_OBJECT_CONTENT_MAX);
    p->lengths = calloc(count, sizeof *p->lengths);
    p->documents = calloc(count, sizeof *p->documents);
    p->ids = calloc(count, sizeof *p->ids);
    if (!p->texts || !p->lengths || !p->documents || !p->ids)
        return -ENOMEM;
    for (uint32_t i = 0; i < count; i++)
        p->lengths[i] = bench_object_content(i, BENCH_REVISION_CREATED,
                                             p->texts + (size_t)i * BENCH_OBJECT_CONTENT_MAX);
    return 0;
}

static void release(prepared *p)
{
    for (uint32_t i = 0; p->documents && i < p->count; i++)
        json_decref(p->documents[i]);
    free(p->texts);
    free(p->lengths);
    free(p->documents);
    free(p->ids);
}

/* Parses every text, timed, and keeps the documents for later steps. */
static int time_parse(prepared *p)
{
    ejson_error error;
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++) {
        p->documents[i] = ejson_parse(text_of(p, i), p->lengths[i], &error);
        if (!p->documents[i]) {
            fprintf(stderr, "commit_bench: object %u does not parse: %s\n", i, error.message);
            return -1;
        }
    }
    report("parse", p->count, monotonic_ns() - start);
    for (uint32_t i = 0; i < p->count; i++)
        p->ids[i] = json_object_get(p->documents[i], "_id");
    return 0;
}

/* Formats every document, timed, and checks the result is what was written. */
static int time_format(const prepared *p)
{
    int64_t elapsed = 0;
    for (uint32_t i = 0; i < p->count; i++) {
        size_t length;
        int64_t start = monotonic_ns();
        char *canonical = ejson_format_pretty(p->documents[i], &length);
        elapsed += monotonic_ns() - start;
        bool same = canonical && length == p->lengths[i] &&
                    memcmp(canonical, text_of(p, i), length) == 0;
        free(canonical);
        if (!same) {
            fprintf(stderr, "commit_bench: object %u is not written in canonical form\n", i);
            return -1;
        }
    }
    report("format", p->count, elapsed);
    return 0;
}

static int time_name(const prepared *p)
{
    char name[OBJECT_NAME_MAX + 1];
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++)
        if (object_name_from_id(p->ids[i], name) != 0) {
            fprintf(stderr, "commit_bench: object %u has no name\n", i);
            return -1;
        }
    report("name", p->count, monotonic_ns() - start);
    return 0;
}

static int time_schema(const prepared *p, store *s)
{
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++) {
        char *text = NULL;
        int error = store_get_schema(s, COLLECTION, &text, NULL);
        free(text);
        if (error != -ENOENT) {
            fprintf(stderr, "commit_bench: get schema: %s\n", store_last_error());
            return -1;
        }
    }
    report("schema", p->count, monotonic_ns() - start);
    return 0;
}

static int time_put(const prepared *p, store *s, const char *step)
{
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++)
        if (store_put_object(s, COLLECTION, p->ids[i], text_of(p, i), p->lengths[i],
                             realtime_ns(), NULL) != 0) {
            fprintf(stderr, "commit_bench: put: %s\n", store_last_error());
            return -1;
        }
    report(step, p->count, monotonic_ns() - start);
    return 0;
}

static int time_info(const prepared *p, store *s)
{
    store_object_info info;
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++)
        if (store_get_object_info(s, COLLECTION, p->ids[i], &info) != 0) {
            fprintf(stderr, "commit_bench: info: %s\n", store_last_error());
            return -1;
        }
    report("info", p->count, monotonic_ns() - start);
    return 0;
}

static int time_get(const prepared *p, store *s)
{
    store_object_info info;
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++) {
        char *text;
        if (store_get_object(s, COLLECTION, p->ids[i], &text, &info) != 0) {
            fprintf(stderr, "commit_bench: get: %s\n", store_last_error());
            return -1;
        }
        free(text);
    }
    report("get", p->count, monotonic_ns() - start);
    return 0;
}

static int time_delete(const prepared *p, store *s)
{
    int64_t start = monotonic_ns();
    for (uint32_t i = 0; i < p->count; i++)
        if (store_delete_object(s, COLLECTION, p->ids[i]) != 0) {
            fprintf(stderr, "commit_bench: delete: %s\n", store_last_error());
            return -1;
        }
    report("delete", p->count, monotonic_ns() - start);
    return 0;
}

static int run(prepared *p, store *s)
{
    if (time_parse(p) != 0 || time_format(p) != 0 || time_name(p) != 0 ||
        time_schema(p, s) != 0)
        return -1;
    return time_put(p, s, "put-new") == 0 && time_info(p, s) == 0 && time_get(p, s) == 0 &&
                   time_put(p, s, "put-replace") == 0 && time_delete(p, s) == 0
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    unsigned long count = 100000;
    if (argc == 4 && strcmp(argv[2], "--count") == 0) {
        char *end;
        count = strtoul(argv[3], &end, 10);
        if (*end != '\0' || count == 0 || count >= (1u << 24)) {
            fprintf(stderr, "commit_bench: invalid count %s\n", argv[3]);
            return 2;
        }
    } else if (argc != 2) {
        fprintf(stderr, "usage: commit_bench DIRECTORY [--count N]\n"
                        "  DIRECTORY: where to create a new store (a tmpfs, ideally)\n");
        return 2;
    }
    prepared p = {0};
    store *s = NULL;
    int status = 1;
    if (prepare(&p, (uint32_t)count) != 0) {
        fprintf(stderr, "commit_bench: out of memory\n");
    } else if (store_open(argv[1], NULL, &s) != 0) {
        fprintf(stderr, "commit_bench: cannot open a store in %s: %s\n", argv[1],
                store_last_error());
    } else if (store_create_collection(s, COLLECTION) != 0) {
        fprintf(stderr, "commit_bench: %s\n", store_last_error());
    } else {
        printf("%lu objects, store in %s\n", count, argv[1]);
        status = run(&p, s) == 0 ? 0 : 1;
    }
    store_close(s);
    release(&p);
    return status;
}

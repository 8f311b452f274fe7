/*
 * bench_objects.c — deterministic benchmark objects: a task tracker's
 * "Task" documents with strings, numbers, a boolean, an array and a nested
 * object, about 300 bytes each.  See bench_objects.h.
 */
#include "bench_objects.h"

#include <stdio.h>

/* ObjectIds: 4 bytes of seconds, 5 bytes fixed per "process", 3 bytes of
 * counter, as MongoDB drivers make them.  Seconds and counter both grow
 * with the index, so names sort in index order, like ids made in sequence. */
#define OBJECT_ID_FIRST_SECOND 0x66500000u
#define OBJECT_ID_PROCESS_BYTES "a1b2c3d4e5"
#define OBJECT_ID_COUNTER_MASK 0xffffffu

static const char *const statuses[] = {"open", "in-progress", "blocked", "review", "closed"};
static const char *const verbs[] = {"Review", "Fix", "Document", "Benchmark", "Refactor",
                                    "Test", "Design", "Deploy"};
static const char *const subjects[] = {"the storage layer", "the mount options",
                                       "schema validation", "the query parser",
                                       "error reporting", "the sync protocol"};
static const char *const people[] = {"Ada Lovelace", "Grace Hopper", "Alan Turing",
                                     "Barbara Liskov", "Edsger Dijkstra", "Frances Allen"};
static const char *const teams[] = {"storage", "sync", "tools", "docs"};
static const char *const tags[] = {"backend", "frontend", "urgent", "good-first-issue",
                                   "performance", "security", "ux"};

#define COUNT_OF(array) (sizeof(array) / sizeof *(array))
/* element i of array, cycling */
#define PICK(array, i) ((array)[(i) % COUNT_OF(array)])

void bench_object_name(uint32_t index, char name[BENCH_OBJECT_NAME_SIZE])
{
    snprintf(name, BENCH_OBJECT_NAME_SIZE, "%08x%s%06x.json", OBJECT_ID_FIRST_SECOND + index,
             OBJECT_ID_PROCESS_BYTES, index & OBJECT_ID_COUNTER_MASK);
}

size_t bench_object_content(uint32_t index, bench_revision revision,
                            char out[BENCH_OBJECT_CONTENT_MAX])
{
    char name[BENCH_OBJECT_NAME_SIZE];
    bench_object_name(index, name);
    /* an update moves the task along: other status, priority, estimate */
    uint32_t step = index + (revision == BENCH_REVISION_UPDATED ? 3 : 0);
    /* a different tag from the first one */
    uint32_t second_tag = index + 1 + (index / 7) % (uint32_t)(COUNT_OF(tags) - 1);
    const char *done = (step % 5 == 4) ? "true" : "false";
    /* Canonical doubles (ejson.c) print the shortest round-tripping form
     * with a '.': halves of small numbers print as "%.1f" does. */
    double estimate_hours = (double)(step % 16) + 0.5;
    int length = snprintf(out, BENCH_OBJECT_CONTENT_MAX,
                          "{\n"
                          "  \"_id\": {\n"
                          "    \"$oid\": \"%.24s\"\n"
                          "  },\n"
                          "  \"title\": \"%s %s (task %u)\",\n"
                          "  \"status\": \"%s\",\n"
                          "  \"priority\": %u,\n"
                          "  \"estimateHours\": %.1f,\n"
                          "  \"done\": %s,\n"
                          "  \"tags\": [\n"
                          "    \"%s\",\n"
                          "    \"%s\"\n"
                          "  ],\n"
                          "  \"assignee\": {\n"
                          "    \"name\": \"%s\",\n"
                          "    \"team\": \"%s\",\n"
                          "    \"openTasks\": %u\n"
                          "  }\n"
                          "}\n",
                          name, PICK(verbs, index), PICK(subjects, index / 8), index,
                          PICK(statuses, step), 1 + step % 5, estimate_hours, done,
                          PICK(tags, index), PICK(tags, second_tag), PICK(people, index / 3),
                          PICK(teams, index / 5), step % 23);
    /* cannot fail or truncate: every field is bounded and far below the limit */
    return length < 0 ? 0 : (size_t)length;
}
